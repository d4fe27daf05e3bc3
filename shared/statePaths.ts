import { join } from 'node:path';

/**
 * The layout of the state dir, shared by the tasker (which writes ledgers) and workers (which
 * write task logs). See docs/ledger.md.
 */
export const statePaths = {
  latest: (stateDir: string) => join(stateDir, 'latest'),
  runDir: (stateDir: string, run: string) => join(stateDir, 'runs', run),
  ledger: (stateDir: string, run: string) => join(stateDir, 'runs', run, 'ledger.jsonl'),
  /**
   * The run's stamp: a random token the tasker writes when it first opens the run and sends
   * with each task (header `warren-stamp`). A worker that does not find the same token here
   * does not share the run's working directory, and gives its tasks back (docs/running.md).
   */
  stamp: (stateDir: string, run: string) => join(stateDir, 'runs', run, 'stamp'),
  /** Held by the one tasker writing the run's ledger (proper-lockfile's lock directory). */
  lock: (stateDir: string, run: string) => join(stateDir, 'runs', run, 'tasker.lock'),
  /** Written by `tasker cancel`; a tasker running the run stops when it sees it. */
  cancelRequest: (stateDir: string, run: string) => join(stateDir, 'runs', run, 'cancel'),
  /** What the broker said of the task queue at a running tasker's last look (for status). */
  brokerView: (stateDir: string, run: string) => join(stateDir, 'runs', run, 'broker.json'),
  /**
   * Durations of the commands that succeeded in the state dir's runs, indexed from their ledgers
   * (tasker/history): rebuilt from the ledgers when missing, so deleting it loses nothing.
   */
  durations: (stateDir: string) => join(stateDir, 'history', 'durations.bin'),
  /**
   * Ledgers of runs of other state dirs, fetched from S3 (`<prefix>/.warren/ledgers/`) for the
   * duration history: `<run>.jsonl` each, and `fetched.json` (the ETag and size of each).
   */
  s3Ledgers: (stateDir: string) => join(stateDir, 'history', 's3'),
  phasesDir: (stateDir: string, run: string) => join(stateDir, 'runs', run, 'phases'),
  spool: (stateDir: string, run: string, phase: string) =>
    join(stateDir, 'runs', run, 'phases', `${phase}.jsonl`),
  /**
   * A worker slot's log of one run, relative to the state dir: every task the slot runs for
   * the run appends its output here (`.out` and `.err`), and results point at their byte span.
   * Appending instead of a file per task keeps a million-task run to a few files.
   */
  slotLog: (run: string, slot: string, stream: 'out' | 'err') =>
    join('runs', run, 'logs', `${slot}.${stream}`),
  /** The file a slot's running task may write commands to (`WARREN_SPAWN`), emptied per task. */
  spawnFile: (stateDir: string, run: string, slot: string) =>
    join(stateDir, 'runs', run, 'spawn', `${slot}.txt`),
} as const;
