import { existsSync, rmSync } from 'node:fs';
import { formatDuration } from '../../shared/duration.js';
import { EXIT } from '../../shared/errors.js';
import { isReadable, type Logger } from '../../shared/logger.js';
import { onShutdown } from '../../shared/shutdown.js';
import { statePaths } from '../../shared/statePaths.js';
import { resultsQueue } from '../../shared/topology.js';
import type { RunConfig } from '../config.js';
import { Dispatcher, type PhaseSummary } from '../dispatch/index.js';
import { DurationHistory, fetchLedgersFor, uploadLedgerFor } from '../history/index.js';
import type { PhasePlan } from '../jobs/index.js';
import { newRunId, openSession } from '../ledger/index.js';
import { BrokerViewFile } from '../observe/index.js';
import { localPool, openTransport, type RunEnd } from '../transports/index.js';

/** What `tasker run`, `send` and `once` ask for: a command line to record and a plan. */
export interface RunRequest {
  /** Recorded in the ledger: `run jobs.sh --rules makita`. */
  readonly command: string;
  /** Writes the run's phase files; throws InputError on bad input, before anything is recorded. */
  readonly plan: (run: string) => Promise<PhasePlan[]>;
  /** Publish and return, without waiting for results (`tasker send --no-wait`). */
  readonly noWait?: boolean;
  /**
   * A rerun (`tasker rerun`, its plans' `only`): how many tasks of the run it leaves alone that
   * have not succeeded. While there are any, the run ends failed, however the rerun went.
   */
  readonly othersUnfinished?: number;
  /** The publish order when neither `--order` nor WARREN_ORDER says: `longest` unless given. */
  readonly defaultOrder?: 'longest' | 'file';
}

const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;

function logPhaseEnd(log: Logger, summary: PhaseSummary): void {
  const parts = [`${summary.succeeded + summary.skipped} succeeded`];
  if (summary.skipped > 0) parts[0] += ` (${summary.skipped} already done)`;
  if (summary.failed > 0) parts.push(`${summary.failed} failed`);
  const left = summary.total - summary.succeeded - summary.skipped - summary.failed;
  if (left > 0) parts.push(`${left} not run`);
  const line = `phase ${summary.name} ended in ${formatDuration(summary.elapsedMs)}: ${parts.join(', ')}`;
  if (summary.failed > 0 || left > 0) log.warn({ phase: summary.name }, line);
  else log.info({ phase: summary.name }, line);
}

function logFailures(log: Logger, summaries: readonly PhaseSummary[]): void {
  const failed = summaries.reduce((sum, summary) => sum + summary.failed, 0);
  if (failed === 0) return;
  log.error(`${plural(failed, 'task')} failed:`);
  for (const summary of summaries) {
    for (const task of summary.failures) {
      const tail = task.errorTail
        .trimEnd()
        .split('\n')
        .slice(-5)
        .map((line) => `    | ${line}`);
      log.error(
        { task: task.task, phase: task.phase, attempt: task.attempt },
        [
          `  ${task.task} [${task.phase}] ${task.reason} after ${plural(task.attempt, 'attempt')}: ${task.command}`,
          ...(tail[0] === '    | ' ? [] : tail),
        ].join('\n'),
      );
    }
    if (summary.failed > summary.failures.length) {
      log.error(
        `  ... and ${summary.failed - summary.failures.length} more in phase ${summary.name} (see \`tasker status --failed\`)`,
      );
    }
  }
}

/**
 * How long commands took in the state dir's runs, for the parallel phases' order and ETA: brought
 * up to date with the ledgers (only what they gained since the last look is read), and, with a
 * bucket, with the ledgers other state dirs' runs left in it. A history that cannot be read is
 * said and left out: the run goes on in file order.
 */
async function loadHistory(
  config: RunConfig,
  plans: readonly PhasePlan[],
  log: Logger,
): Promise<DurationHistory | undefined> {
  if (!plans.some((plan) => plan.kind === 'parallel')) return undefined;
  if (config.s3 && config.historyS3) await fetchLedgersFor(config.s3, config.stateDir, log);
  try {
    const { history, load } = await DurationHistory.load(config.stateDir, { log });
    // Said when it took long enough to notice: the first look at a state dir of big runs.
    (load.ms >= 2000 ? log.info : log.debug).call(
      log,
      `duration history: ${history.size} commands; read ${load.bytes} bytes of ${load.read} ledgers in ${load.ms} ms${load.rebuilt ? ' (built anew)' : ''}`,
    );
    return history;
  } catch (error) {
    log.warn(
      `cannot read the duration history of \`${config.stateDir}\`: ${(error as Error).message}; publishing in file order`,
    );
    return undefined;
  }
}

/** Opens (or resumes) a run, runs its phases in order through the transports, and closes it. */
export async function runPhases(
  config: RunConfig,
  log: Logger,
  request: RunRequest,
): Promise<number> {
  const run = config.runId ?? newRunId();
  // `tasker cancel` reaches a running tasker two ways: a request file in the run's directory
  // (checked every second) and, with a broker, a message on the control exchange.
  let cancel = () => {};
  // Known once the session is open, before any task is published: it goes with each of them.
  let stamp: string | undefined;
  // Connect before anything is recorded: an unreachable broker leaves no half-made run. (The
  // live view and the progress bars below load as late: a local run's start does not pay for
  // what it does not use.)
  const { transport: parallel, why } = await openTransport(config, {
    run,
    log: log.child({ run }),
    name: `warren tasker ${run}`,
    onCancel: () => cancel(),
    // A `--no-wait` run publishes and leaves: its results stay queued for `tasker collect`.
    leaveResults: request.noWait,
    stamp: () => stamp,
  });
  const transports = { parallel, serial: localPool(config, log, { slots: 1, prefix: 'tasker' }) };
  let opened: Awaited<ReturnType<typeof openSession>>;
  try {
    opened = await openSession({
      stateDir: config.stateDir,
      runId: run,
      mode: transports.parallel.mode,
      command: request.command,
      log,
      plan: request.plan,
      classes: config.classes,
    });
  } catch (error) {
    await Promise.all([transports.parallel.close(), transports.serial.close()]);
    throw error;
  }
  const { session, plans } = opened;
  stamp = session.stamp;
  const runLog = log.child({ run });
  let view: Awaited<ReturnType<typeof import('../observe/liveView.js').startLiveView>> | undefined;
  if (config.httpPort > 0) {
    try {
      const { startLiveView } = await import('../observe/liveView.js');
      view = await startLiveView({
        port: config.httpPort,
        host: config.httpHost,
        stateDir: config.stateDir,
        run,
        log: runLog,
      });
    } catch (error) {
      await Promise.all([transports.parallel.close(), transports.serial.close()]);
      await session.close(EXIT.INFRA);
      throw error;
    }
  }
  runLog.info(
    `${session.resumed ? 'resuming' : 'started'} run ${run}: ${transports.parallel.mode} mode, ${transports.parallel.description} (${why}); ${plural(plans.length, 'phase')}`,
  );
  // Bars only where they can be redrawn in place: readable logs on a terminal.
  const progress =
    isReadable(config.logFormat) && process.stderr.isTTY === true && plans.length > 0
      ? new (await import('../observe/progress.js')).Progress(plans.map((plan) => plan.name))
      : undefined;
  const history = await loadHistory(config, plans, runLog);
  const brokerView = new BrokerViewFile(statePaths.brokerView(config.stateDir, run));
  const dispatcher = new Dispatcher(
    session.ledger,
    session.memory,
    {
      run,
      retries: config.retries,
      retryDelayMs: config.retryDelayMs,
      timeoutMs: config.timeoutMs,
      keepGoing: config.keepGoing,
      upload: config.upload,
      maxTasks: config.maxTasks,
      plannedTasks: plans.reduce((sum, plan) => sum + plan.total, 0),
      noWait: request.noWait,
      lostAfterMs: config.lostAfterMs,
      order: config.order ?? request.defaultOrder ?? 'longest',
      expectedMs:
        history && history.size > 0 ? (command) => history.expectedMs(command) : undefined,
    },
    runLog,
    (update) => {
      progress?.update(update);
      brokerView.update(update);
    },
  );
  let interrupted = false;
  let cancelled = false;
  const removeHandlers = onShutdown(runLog, async () => {
    interrupted = true;
    await dispatcher.interrupt();
  });
  const cancelFile = statePaths.cancelRequest(config.stateDir, run);
  rmSync(cancelFile, { force: true }); // a request left from before this tasker started is void
  cancel = () => {
    if (cancelled) return;
    cancelled = true;
    interrupted = true;
    runLog.warn(`run ${run} cancelled: stopping its tasks`);
    void dispatcher.interrupt();
  };
  const cancelWatch = setInterval(() => {
    if (existsSync(cancelFile)) cancel();
  }, 1000);
  let exitCode: number = EXIT.INFRA;
  const summaries: PhaseSummary[] = [];
  try {
    for (const [index, plan] of plans.entries()) {
      runLog.info(
        { phase: plan.name },
        `phase ${index + 1}/${plans.length} ${plan.name}: ${plural(plan.only?.size ?? plan.total, `${plan.kind} task`)}${plan.only ? ` again, of ${plan.total}` : ''}`,
      );
      const transport = plan.kind === 'serial' ? transports.serial : transports.parallel;
      const summary = await dispatcher.runPhase(plan, transport);
      summaries.push(summary);
      if (request.noWait && plan.kind === 'parallel') {
        runLog.info(
          { phase: plan.name },
          `published phase ${plan.name} (${plural(plan.total, 'task')}) in ${formatDuration(summary.elapsedMs)}; not waiting for results: they wait in \`${resultsQueue(run)}\``,
        );
        continue;
      }
      logPhaseEnd(runLog, summary);
      if (interrupted) break;
      const incomplete = summary.failed > 0 || summary.interrupted;
      if (incomplete && !config.keepGoing && index < plans.length - 1) {
        runLog.error(
          `stopping after phase ${plan.name}; later phases did not run (--keep-going runs them anyway)`,
        );
        break;
      }
    }
    progress?.stop();
    logFailures(runLog, summaries);
    const othersLeft = request.othersUnfinished ?? 0;
    const failedNow = summaries.some((summary) => summary.failed > 0);
    const failed = failedNow || othersLeft > 0;
    exitCode = interrupted ? EXIT.INTERRUPTED : failed ? EXIT.TASKS_FAILED : EXIT.OK;
    if (cancelled) {
      session.ledger.append({ type: 'cancel', at: new Date().toISOString() });
      runLog.warn(
        `run ${run} cancelled; what did not finish will not run (a new run does it all again)`,
      );
    } else if (interrupted) runLog.warn(`run ${run} interrupted; resume it with --run-id ${run}`);
    else if (request.noWait && !failed)
      runLog.info(
        `run ${run}: published; \`tasker collect --run-id ${run}\` records its results as they come (\`tasker status\` shows them once collected)`,
      );
    else if (!failedNow && othersLeft > 0)
      runLog.warn(
        `run ${run}: the tasks run again succeeded; ${plural(othersLeft, 'other task')} of the run did not succeed or did not run (\`tasker status --failed\`), so the run stays failed`,
      );
    else if (!failed) runLog.info(`run ${run} succeeded`);
  } finally {
    progress?.stop();
    brokerView.remove();
    removeHandlers();
    clearInterval(cancelWatch);
    rmSync(cancelFile, { force: true });
    // Finished: every phase that ran passed its barrier, its tasks succeeded or failed. An
    // error or a signal stopped it half-way otherwise: it is interrupted, and can be resumed.
    const end: RunEnd = cancelled
      ? 'cancelled'
      : exitCode === EXIT.OK || exitCode === EXIT.TASKS_FAILED
        ? 'finished'
        : 'interrupted';
    await transports.parallel.finish(end);
    await Promise.all([transports.parallel.close(), transports.serial.close()]);
    await session.close(exitCode);
    view?.close();
    // Whole now, with its `run-end`: for the history of taskers on other machines. Never throws.
    if (config.s3 && config.historyS3)
      await uploadLedgerFor(config.s3, config.stateDir, run, runLog);
  }
  return exitCode;
}
