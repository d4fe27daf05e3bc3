import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eachTempDir, tasker } from '../../helpers/cli.js';

let dir: string;
eachTempDir((made) => (dir = made), { leftovers: 'fail' });

/** The `log:` lines of `tasker status --failed`: the path as printed, and the byte span. */
async function failedLogs(args: string[], cwd: string) {
  const shown = await tasker(['status', '--failed', ...args], { cwd });
  expect(shown.exitCode).toBe(0);
  return [...shown.stdout.matchAll(/^ {4}log: (.+) \(bytes (\d+)-(\d+)\)$/gm)].map((match) => ({
    path: match[1] ?? '',
    start: Number(match[2]),
    end: Number(match[3]),
  }));
}

/** What a person gets opening the printed path from where they ran the command. */
function opened(cwd: string, log: { path: string; start: number; end: number } | undefined) {
  expect(log, 'a log line').toBeDefined();
  const file = resolve(cwd, log?.path ?? '');
  expect(existsSync(file), `${log?.path} from ${cwd}`).toBe(true);
  return readFileSync(file).subarray(log?.start, log?.end).toString();
}

describe('tasker status --failed', () => {
  it('prints log paths the reader can open from where they ran it, wherever the state dir is', async () => {
    mkdirSync(join(dir, 'study'));
    writeFileSync(join(dir, 'study', 'jobs.sh'), "sh -c 'echo the input is missing >&2; exit 4'\n");
    const run = await tasker(['run', 'jobs.sh', '--run-id', 'st-1', '--retries', '0'], {
      cwd: join(dir, 'study'),
    });
    expect(run.exitCode).toBe(1);
    // In the working directory: a short path under .warren.
    const [here] = await failedLogs([], join(dir, 'study'));
    expect(here?.path).toMatch(/^\.warren\/runs\/st-1\//);
    expect(opened(join(dir, 'study'), here)).toBe('the input is missing\n');
    // From a folder below it, with --workdir: the state dir is not under the reader's folder.
    mkdirSync(join(dir, 'study', 'plots'));
    const [below] = await failedLogs(['--workdir', '..'], join(dir, 'study', 'plots'));
    expect(isAbsolute(below?.path ?? '')).toBe(true);
    expect(opened(join(dir, 'study', 'plots'), below)).toBe('the input is missing\n');
    // From somewhere else, with --state-dir.
    const [elsewhere] = await failedLogs(['--state-dir', join(dir, 'study', '.warren')], dir);
    expect(opened(dir, elsewhere)).toBe('the input is missing\n');
  });

  it('--json gives each task the signal that ended it, beside its exit status', async () => {
    writeFileSync(join(dir, 'jobs.sh'), 'kill -KILL $$\nexit 3\n');
    const run = await tasker(['run', 'jobs.sh', '--run-id', 'st-2', '--retries', '0'], {
      cwd: dir,
    });
    expect(run.exitCode).toBe(1);
    const shown = await tasker(['status', '--failed', '--json'], { cwd: dir });
    const tasks = (JSON.parse(shown.stdout) as { tasks: Record<string, unknown>[] }).tasks;
    const fields = tasks.map(({ command, failure, exitCode, signal }) => ({
      command,
      failure,
      exitCode,
      signal,
    }));
    expect(fields).toEqual([
      { command: 'kill -KILL $$', failure: 'signal', exitCode: 137, signal: 'SIGKILL' },
      { command: 'exit 3', failure: 'exit', exitCode: 3, signal: null },
    ]);
  });
});
