import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterEach, beforeEach, expect } from 'vitest';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures');
export const CORPUS = join(FIXTURES, 'corpus', 'makita');
/** The stand-in `python` for Makita jobs. */
export const STAND_IN_BIN = join(FIXTURES, 'bin');
const TASKER = join(ROOT, 'dist', 'tasker', 'cli.js');
const WORKER = join(ROOT, 'dist', 'worker', 'cli.js');

export interface RunOptions {
  readonly cwd: string;
  readonly env?: Record<string, string | undefined>;
  readonly input?: string;
}

/** Environment for a CLI under test: no broker unless a test asks for one, JSON logs. */
export function cliEnv(
  extra: Record<string, string | undefined> = {},
): Record<string, string | undefined> {
  return {
    ...process.env,
    RABBITMQ_URL: undefined,
    RABBITMQ_HOST: undefined,
    WARREN_RUN_ID: undefined,
    WARREN_LOG_FORMAT: 'json',
    PATH: `${STAND_IN_BIN}${delimiter}${process.env.PATH ?? ''}`,
    ...extra,
  };
}

function start(
  bin: string,
  args: readonly string[],
  options: RunOptions,
): ResultPromise<{ reject: false }> {
  return execa('node', [bin, ...args], {
    cwd: options.cwd,
    env: cliEnv(options.env),
    extendEnv: false,
    reject: false,
    input: options.input,
  }) as ResultPromise<{ reject: false }>;
}

/** Runs `tasker ARGS` to its end. */
export const tasker = (args: readonly string[], options: RunOptions) =>
  start(TASKER, args, options);
/** Runs `worker ARGS` to its end. */
export const worker = (args: readonly string[], options: RunOptions) =>
  start(WORKER, args, options);

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'warren-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Waits until `condition` holds, polling; fails after `withinMs`. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  withinMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface EachTempDirOptions {
  /** Runs after each test, before the checks: stops what the test started. */
  readonly stop?: () => unknown;
  /**
   * Processes still running in the directory after `stop`: `fail` the test at once, `wait` up
   * to 10 s for them to go (a killed tree takes a moment), or `ignore` them (no process runs).
   */
  readonly leftovers?: 'fail' | 'wait' | 'ignore';
}

/**
 * Gives each test of the file a fresh temporary directory, handed to `use` before the test runs
 * and removed after it (kept when the leftovers check fails, to look at).
 */
export function eachTempDir(use: (dir: string) => void, options: EachTempDirOptions = {}): void {
  let made: ReturnType<typeof tempDir>;
  beforeEach(() => {
    made = tempDir();
    use(made.dir);
  });
  afterEach(async () => {
    await options.stop?.();
    if (options.leftovers === 'fail') expect(processesIn(made.dir)).toEqual([]);
    if (options.leftovers === 'wait')
      await waitFor(() => processesIn(made.dir).length === 0, 10_000, 'no process left');
    made.cleanup();
  });
}

/** Pids of processes whose working directory is inside `dir`: what a test must not leave behind. */
export function processesIn(dir: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cwd = readlinkSync(`/proc/${entry}/cwd`);
      if (cwd === dir || cwd.startsWith(`${dir}/`)) found.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

/** JSON log lines a CLI wrote to stderr. */
export function logLines(stderr: string): { level: number; msg: string; [key: string]: unknown }[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line));
}
