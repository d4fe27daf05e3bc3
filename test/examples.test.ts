import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ROOT, tasker, tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

describe('examples', () => {
  it('quickstart: the README first command runs three phases and writes a summary', async () => {
    cpSync(join(ROOT, 'examples', 'quickstart'), dir, { recursive: true });
    const result = await tasker(['run', join(dir, 'jobs.sh'), '--workdir', dir], { cwd: ROOT });
    expect(result.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'results', 'summary.txt'), 'utf8')).toMatch(
      /^8 runs, pi is about 3\.1\d+\n$/,
    );
    const status = await tasker(['status', '--workdir', dir], { cwd: ROOT });
    expect(status.stdout).toMatch(/phase2\s+parallel\s+8\s+8\s+0\s+0\s+0/);
  });

  it('makita: the basic template runs through the stand-in python with --rules makita', async () => {
    cpSync(join(ROOT, 'examples', 'makita'), dir, { recursive: true });
    const result = await tasker(['run', 'jobs.sh', '--rules', 'makita'], { cwd: dir });
    expect(result.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'output', 'tables', 'metrics_all.csv'), 'utf8')).toBe(
      'merged 2 datasets\n',
    );
  });
});
