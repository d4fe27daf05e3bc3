import { randomBytes } from 'node:crypto';
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import lockfile from 'proper-lockfile';
import { makeDirs } from '../../shared/dirs.js';
import { describeSystemError, InfraError, InputError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { statePaths } from '../../shared/statePaths.js';
import type { PhasePlan } from '../jobs/index.js';
import { LEDGER_VERSION, LedgerWriter } from './ledger.js';
import { LOCK, lockOptions } from './runLock.js';
import { loadRunMemory, type RunMemory } from './runMemory.js';
import { runStamp } from './runStamp.js';

/** A run opened by this tasker process: locked, with its ledger open for appending. */
export interface Session {
  readonly run: string;
  /** True when the ledger already had records: tasks that succeeded are skipped. */
  readonly resumed: boolean;
  readonly ledger: LedgerWriter;
  readonly memory: RunMemory;
  /** The run's stamp (`runStamp`): sent with its tasks, so workers tell whether they share it. */
  readonly stamp: string;
  /** Records the exit code, flushes the ledger and releases the run. */
  close(exitCode: number): Promise<void>;
}

/** A new run id: UTC start time and a random suffix, so ids sort by age (`20261121-203012-7f3a`). */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

/** The run `tasker status` and friends use when none is named. */
export async function latestRun(stateDir: string): Promise<string> {
  try {
    return (await readFile(statePaths.latest(stateDir), 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new InputError(
        'NO_RUNS',
        `no runs in \`${stateDir}\` yet; start one with \`tasker run\``,
      );
    }
    throw new InfraError(
      'STATE_UNREADABLE',
      `cannot read \`${statePaths.latest(stateDir)}\`: ${describeSystemError(error)}`,
    );
  }
}

async function lockRun(stateDir: string, run: string, log: Logger): Promise<() => Promise<void>> {
  const runDir = statePaths.runDir(stateDir, run);
  try {
    return await lockfile.lock(runDir, {
      ...lockOptions(stateDir, run),
      update: LOCK.updateMs,
      retries: { retries: 8, factor: 1, minTimeout: 1000, maxTimeout: 1000 },
      onCompromised: (error) =>
        log.error({ err: error }, `lost the lock of run ${run}; another tasker may be writing it`),
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOCKED') {
      throw new InfraError(
        'RUN_LOCKED',
        `run \`${run}\` is in use by another tasker (lock \`${statePaths.lock(stateDir, run)}\`)`,
      );
    }
    throw new InfraError(
      'STATE_UNWRITABLE',
      `cannot lock run \`${run}\` in \`${runDir}\`: ${describeSystemError(error)}`,
      {
        cause: error,
      },
    );
  }
}

/**
 * Opens a run for writing: the given run id (resumed if its ledger has records) or a new one.
 * Only one tasker at a time holds a run. `plan` runs under the lock, before anything is
 * recorded: when it fails (bad input), a new run leaves nothing behind.
 */
export async function openSession(options: {
  readonly stateDir: string;
  readonly runId: string;
  readonly mode: string;
  readonly command: string;
  readonly log: Logger;
  readonly plan: (run: string) => Promise<PhasePlan[]>;
  /** The run's size classes (`--classes`), smallest first: a resumed task keeps its class. */
  readonly classes?: readonly string[];
}): Promise<{ session: Session; plans: PhasePlan[] }> {
  const run = options.runId;
  const runDir = statePaths.runDir(options.stateDir, run);
  const isNew = !existsSync(runDir);
  try {
    makeDirs(runDir);
  } catch (error) {
    throw new InfraError(
      'STATE_UNWRITABLE',
      `cannot create \`${runDir}\`: ${describeSystemError(error)}`,
      { cause: error },
    );
  }
  const release = await lockRun(options.stateDir, run, options.log);
  try {
    const ledgerPath = statePaths.ledger(options.stateDir, run);
    const { memory, records, cancelledAt } = await loadRunMemory(ledgerPath, options.classes);
    // Workers drop a cancelled run's tasks, and `tasker cancel` means "never mind".
    if (cancelledAt) {
      throw new InputError(
        'RUN_CANCELLED',
        `run ${run} was cancelled (${cancelledAt}); its tasks do not run again: start a new run (another --run-id, or none)`,
      );
    }
    const plans = await options.plan(run);
    const stamp = runStamp(options.stateDir, run);
    const ledger = LedgerWriter.open(ledgerPath);
    ledger.append({
      type: 'run',
      at: new Date().toISOString(),
      run,
      version: LEDGER_VERSION,
      mode: options.mode,
      command: options.command,
      host: hostname(),
      pid: process.pid,
    });
    ledger.append({
      type: 'plan',
      at: new Date().toISOString(),
      phases: plans.map(({ name, kind, total }) => ({ name, kind, total })),
    });
    const latest = statePaths.latest(options.stateDir);
    writeFileSync(`${latest}.tmp`, `${run}\n`);
    renameSync(`${latest}.tmp`, latest);
    const session: Session = {
      run,
      resumed: records > 0,
      ledger,
      memory,
      stamp,
      close: async (exitCode) => {
        ledger.append({ type: 'run-end', at: new Date().toISOString(), exitCode });
        ledger.close();
        await release().catch(() => {});
      },
    };
    return { session, plans };
  } catch (error) {
    await release().catch(() => {});
    if (isNew) await rm(runDir, { recursive: true, force: true }).catch(() => {});
    throw error;
  }
}
