import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eachTempDir, tasker } from '../../helpers/cli.js';

let dir: string;
eachTempDir((made) => (dir = made));

describe('tasker clean', () => {
  it('empties the directory but keeps the state dir and never follows a symlink out', async () => {
    const work = join(dir, 'work');
    const outside = join(dir, 'outside');
    mkdirSync(join(work, 'output', 'deep'), { recursive: true });
    mkdirSync(join(work, '.warren', 'runs'), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(outside, 'precious.csv'), 'keep me\n');
    writeFileSync(join(work, 'output', 'deep', 'x'), '');
    writeFileSync(join(work, 'jobs.sh'), '');
    writeFileSync(join(work, '.warren', 'latest'), 'r\n');
    symlinkSync(outside, join(work, 'link'));
    const result = await tasker(['clean', work], { cwd: dir });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe(`emptied ${work}: removed 3 entries`);
    expect(readdirSync(work)).toEqual(['.warren']);
    expect(existsSync(join(work, '.warren', 'latest'))).toBe(true);
    expect(existsSync(join(outside, 'precious.csv'))).toBe(true);
  });

  it('keeps a state dir nested deeper in the directory', async () => {
    mkdirSync(join(dir, 'a', 'state'), { recursive: true });
    writeFileSync(join(dir, 'a', 'state', 'ledger'), '');
    writeFileSync(join(dir, 'a', 'other'), '');
    const result = await tasker(['clean', dir, '--state-dir', join(dir, 'a', 'state')], {
      cwd: dir,
    });
    expect(result.exitCode).toBe(0);
    expect(readdirSync(join(dir, 'a'))).toEqual(['state']);
  });

  it('refuses the root, the home directory and its parents, and a missing directory', async () => {
    const home = join(dir, 'home', 'me');
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, 'thesis.tex'), '');
    for (const [target, message] of [
      ['/', 'refusing to clean `/`: it is the root directory'],
      [home, `refusing to clean \`${home}\`: it is the home directory or one of its parents`],
      [join(dir, 'home'), 'it is the home directory or one of its parents'],
      [join(dir, 'nope'), `cannot clean \`${join(dir, 'nope')}\`: no such directory`],
    ]) {
      const result = await tasker(['clean', target as string], { cwd: dir, env: { HOME: home } });
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain(message);
    }
    expect(existsSync(join(home, 'thesis.tex'))).toBe(true);
  });

  it('refuses to clean the state dir itself or a folder in it', async () => {
    mkdirSync(join(dir, '.warren', 'runs', 'r1'), { recursive: true });
    writeFileSync(join(dir, '.warren', 'latest'), 'r1\n');
    for (const args of [
      ['clean', join(dir, '.warren')],
      ['clean', join(dir, '.warren', 'runs')],
      ['clean', dir, '--state-dir', dir],
    ]) {
      const result = await tasker(args, { cwd: dir });
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(/it is the state dir, or inside it/);
    }
    expect(existsSync(join(dir, '.warren', 'latest'))).toBe(true);
  });
});
