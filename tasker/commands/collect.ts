import { existsSync } from 'node:fs';
import { formatDuration } from '../../shared/duration.js';
import { EXIT, InputError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { TaskResult } from '../../shared/protocol.js';
import { statePaths } from '../../shared/statePaths.js';
import type { CollectConfig } from '../config.js';
import { type PhasePlan, readSpool } from '../jobs/index.js';
import {
  endRecordOf,
  openSession,
  type PlannedPhase,
  plannedPhasesVisitor,
  type RunMemory,
  replayLedger,
} from '../ledger/index.js';
import { openTransport, usesBroker } from '../transports/index.js';

/** How long the results queue must stay empty before `collect` (without --wait) stops. */
const QUIET_MS = 1500;

/** The phases a run planned, from its ledger (for a tasker that plans nothing itself). */
async function plannedPhases(stateDir: string, run: string): Promise<PhasePlan[]> {
  const phases = new Map<string, PlannedPhase>();
  await replayLedger(statePaths.ledger(stateDir, run), plannedPhasesVisitor(phases));
  return [...phases].map(([name, phase]) => ({
    name,
    ...phase,
    spool: statePaths.spool(stateDir, run, name),
  }));
}

/** A published attempt with no result yet. */
interface Outstanding {
  readonly phase: string;
  readonly command: string;
  readonly attempt: number;
}

/** Published attempts without a result, and how many tasks already ended without success. */
async function outstanding(
  plans: readonly PhasePlan[],
  memory: RunMemory,
): Promise<{ pending: Map<string, Outstanding>; failedBefore: number }> {
  const pending = new Map<string, Outstanding>();
  let failedBefore = 0;
  const consider = (phase: string, id: string, command: string) => {
    if (memory.succeeded(id)) return;
    const attempt = memory.pending(id);
    if (attempt > 0) pending.set(id, { phase, command, attempt });
    else if (memory.attempts(id) > 0) failedBefore++;
  };
  for (const plan of plans) {
    for await (const task of readSpool(plan.spool)) consider(plan.name, task.id, task.command);
    for (const [id, command] of memory.spawnedIn(plan.name)) consider(plan.name, id, command);
  }
  return { pending, failedBefore };
}

/** How `tasker collect` went. */
export interface Collected {
  readonly run: string;
  readonly succeeded: number;
  readonly failed: number;
  /** Published attempts still without a result. */
  readonly left: number;
  readonly exitCode: number;
}

/**
 * `tasker collect`: records the results waiting in a run's results queue (a `send --no-wait`
 * run, whose tasker has exited) into its ledger, so that `tasker status` reports them. Takes
 * what is there and stops once the queue stays empty, or, with `wait`, once every published
 * task has a result. Retries nothing: `tasker send` of the same file again does that.
 */
export async function collectRun(
  config: CollectConfig,
  run: string,
  log: Logger,
  wait: boolean,
): Promise<Collected> {
  if (!usesBroker(config)) {
    throw new InputError(
      'NO_BROKER',
      'tasker collect needs the broker the run was sent to (RABBITMQ_URL)',
    );
  }
  if (!existsSync(statePaths.ledger(config.stateDir, run)))
    throw new InputError('NO_SUCH_RUN', `no run \`${run}\` in \`${config.stateDir}\``);
  const { transport } = await openTransport(config, { run, log, name: `warren collect ${run}` });
  let session: Awaited<ReturnType<typeof openSession>>['session'];
  let plans: PhasePlan[];
  try {
    ({ session, plans } = await openSession({
      stateDir: config.stateDir,
      runId: run,
      mode: transport.mode,
      command: `collect${wait ? ' --wait' : ''}`,
      log,
      plan: () => plannedPhases(config.stateDir, run),
    }));
  } catch (error) {
    await transport.close();
    throw error;
  }
  const { pending, failedBefore } = await outstanding(plans, session.memory);
  const started = Date.now();
  let succeeded = 0;
  let failed = 0;
  let lastMessage = Date.now();
  let failure: unknown;
  let wake = () => {};
  const record = (result: TaskResult) => {
    const task = pending.get(result.task);
    if (!task || task.attempt !== result.attempt || result.run !== run) return undefined;
    pending.delete(result.task);
    // Nothing retries it now: `tasker send` of the same file again would.
    const end = endRecordOf(result, { phase: task.phase, command: task.command, final: true });
    session.ledger.append(end);
    if (result.state === 'succeeded') succeeded++;
    else failed++;
    wake();
    return session.ledger.flushed();
  };
  transport.listen({
    queued: () => {},
    started: (task, attempt, worker, at) => {
      lastMessage = Date.now();
      const known = pending.get(task);
      if (known?.attempt !== attempt) return;
      session.ledger.append({
        type: 'start',
        at: at.toISOString(),
        task,
        phase: known.phase,
        attempt,
        worker,
      });
    },
    result: (result) => {
      lastMessage = Date.now();
      return record(result);
    },
    fatal: (error) => {
      failure = error;
      wake();
    },
  });
  let exitCode: number = EXIT.OK;
  try {
    log.info(
      `collecting run ${run}: ${pending.size} published task(s) without a result${wait ? '; waiting for all of them' : ''}`,
    );
    while (pending.size > 0 && !failure) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 250);
      });
      if (!wait && Date.now() - lastMessage >= QUIET_MS && (await transport.waiting()) === 0) break;
    }
    if (failure) throw failure;
    await session.ledger.flushed();
    // The run's outcome so far, as `tasker status` reads it from this exit code.
    exitCode = failed + failedBefore > 0 ? EXIT.TASKS_FAILED : EXIT.OK;
    // Nothing is pending: whatever is left in the queue (a late duplicate, a result whose ack
    // the broker had not applied yet) is of an attempt already recorded.
    if (pending.size === 0) await transport.finish('finished');
    log.info(
      `collected ${succeeded + failed} result(s) of run ${run} in ${formatDuration(Date.now() - started)}: ${succeeded} succeeded, ${failed} failed; ${pending.size} still out${pending.size > 0 ? ` (run \`tasker collect --run-id ${run}\` again later, or with --wait)` : ''}`,
    );
  } catch (error) {
    exitCode = EXIT.INFRA;
    throw error;
  } finally {
    await transport.close();
    await session.close(exitCode);
  }
  return { run, succeeded, failed, left: pending.size, exitCode };
}
