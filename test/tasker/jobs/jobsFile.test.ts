import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../../shared/errors.js';
import { type JobEntry, MAX_LINE, readJobs } from '../../../tasker/jobs/jobsFile.js';
import { eachTempDir } from '../../helpers/cli.js';

let dir: string;
eachTempDir((made) => (dir = made));

async function read(content: string | Buffer): Promise<JobEntry[]> {
  const path = join(dir, 'jobs.sh');
  writeFileSync(path, content);
  const entries: JobEntry[] = [];
  for await (const entry of readJobs(path)) entries.push(entry);
  return entries;
}

async function failure(content: string | Buffer): Promise<InputError> {
  try {
    await read(content);
  } catch (error) {
    if (error instanceof InputError) return error;
    throw error;
  }
  throw new Error('expected an InputError');
}

describe('readJobs', () => {
  it('skips blank lines and comments and numbers lines as in the file', async () => {
    expect(await read('\n# a comment\n  # indented comment\necho a\n\n   \necho b\n')).toEqual([
      { kind: 'command', line: 4, text: 'echo a' },
      { kind: 'command', line: 7, text: 'echo b' },
    ]);
  });

  it('handles CRLF endings and a missing final newline', async () => {
    expect(await read('echo a\r\necho b\r\necho c')).toEqual([
      { kind: 'command', line: 1, text: 'echo a' },
      { kind: 'command', line: 2, text: 'echo b' },
      { kind: 'command', line: 3, text: 'echo c' },
    ]);
  });

  it('joins a line ending in a backslash with the next, as the shell would', async () => {
    expect(await read('python sim.py \\\r\n  --seed 1 \\\n  --out x\necho done\n')).toEqual([
      { kind: 'command', line: 1, text: 'python sim.py \\\n  --seed 1 \\\n  --out x' },
      { kind: 'command', line: 4, text: 'echo done' },
    ]);
  });

  it('reads a line that is exactly `wait` as a barrier', async () => {
    expect(await read('echo a\n  wait  \necho b\necho wait\n')).toEqual([
      { kind: 'command', line: 1, text: 'echo a' },
      { kind: 'wait', line: 2 },
      { kind: 'command', line: 3, text: 'echo b' },
      { kind: 'command', line: 4, text: 'echo wait' },
    ]);
  });

  it('refuses a missing file, a directory, a binary file and an over-long line with one clear line', async () => {
    await expect(readJobs(join(dir, 'nope.sh')).next()).rejects.toThrow(
      `cannot read jobs file \`${join(dir, 'nope.sh')}\`: no such file`,
    );
    mkdirSync(join(dir, 'folder'));
    await expect(readJobs(join(dir, 'folder')).next()).rejects.toThrow('is a directory');
    expect(
      (
        await failure(
          Buffer.from([0x65, 0x63, 0x68, 0x6f, 0x0a, 0x7f, 0x45, 0x4c, 0x46, 0x00, 0x01]),
        )
      ).code,
    ).toBe('JOBS_BINARY');
    const long = await failure(`echo a\necho ${'x'.repeat(MAX_LINE)}\necho b\n`);
    expect(long.code).toBe('LINE_TOO_LONG');
    expect(long.message).toMatch(/^line 2 of `.*jobs\.sh` is longer than 1 MiB$/);
  });

  it('streams a large file without holding it', async () => {
    const lines = 200_000;
    const path = join(dir, 'big.sh');
    writeFileSync(path, Array.from({ length: lines }, (_, i) => `echo ${i}`).join('\n'));
    let count = 0;
    let last = '';
    for await (const entry of readJobs(path)) {
      count++;
      if (entry.kind === 'command') last = entry.text;
    }
    expect(count).toBe(lines);
    expect(last).toBe(`echo ${lines - 1}`);
  });
});
