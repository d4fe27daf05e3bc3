import { existsSync, rmSync } from 'node:fs';
import type { Config } from '../../shared/config.js';
import { formatDuration } from '../../shared/duration.js';
import { EXIT } from '../../shared/errors.js';
import { isReadable, type Logger } from '../../shared/logger.js';
import { onShutdown } from '../../shared/shutdown.js';
import { statePaths } from '../../shared/statePaths.js';
import { resultsQueue } from '../../shared/topology.js';
import { Dispatcher } from '../dispatch/dispatcher.js';
import type { PhaseSummary } from '../dispatch/phaseTally.js';
import type { PhasePlan } from '../jobs/phasePlan.js';
import { newRunId, openSession } from '../ledger/session.js';
import { LocalPool } from '../transports/localPool.js';
import type { RabbitTransport } from '../transports/rabbitTransport.js';
import type { Transport } from '../transports/transport.js';

/** What `tasker run`, `send` and `once` ask for: a command line to record and a plan. */
export interface RunRequest {
  /** Recorded in the ledger: `run jobs.sh --rules makita`. */
  readonly command: string;
  /** Writes the run's phase files; throws InputError on bad input, before anything is recorded. */
  readonly plan: (run: string) => Promise<PhasePlan[]>;
  /** Publish and return, without waiting for results (`tasker send --no-wait`). */
  readonly noWait?: boolean;
}

interface Transports {
  readonly parallel: Transport;
  readonly serial: Transport;
  /** Why this mode: `no broker configured`, `--local`, `RABBITMQ_URL`. */
  readonly why: string;
  /** The broker transport, when there is one. */
  readonly rabbit: RabbitTransport | undefined;
}

async function transportsFor(
  config: Config,
  run: string,
  log: Logger,
  onCancel: () => void,
): Promise<Transports> {
  const onShellError = (line: string) => log.warn(`task shell: ${line}`);
  const pool = (slots: number, prefix: string) =>
    new LocalPool({
      slots,
      prefix,
      workdir: config.workdir,
      stateDir: config.stateDir,
      killGraceMs: config.killGraceMs,
      env: config.taskEnv,
      onShellError,
      s3: config.s3,
    });
  const serial = pool(1, 'tasker');
  if (config.broker && !config.local) {
    // Connect before anything is recorded: an unreachable broker leaves no half-made run.
    // (Loaded here, as the live view and the progress bars below: a local run's start does
    // not pay for amqplib and the message schemas.)
    const { RabbitTransport, rabbitOptions } = await import('../transports/rabbitTransport.js');
    const rabbit = await RabbitTransport.open({
      ...rabbitOptions({ ...config, broker: config.broker }, run, log, `warren tasker ${run}`),
      onCancel,
    });
    return { parallel: rabbit, serial, why: 'broker configured', rabbit };
  }
  return {
    parallel: pool(config.slots, 'local'),
    serial,
    why: config.local ? '--local' : 'no broker configured',
    rabbit: undefined,
  };
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

/** Opens (or resumes) a run, runs its phases in order through the transports, and closes it. */
export async function runPhases(config: Config, log: Logger, request: RunRequest): Promise<number> {
  const run = config.runId ?? newRunId();
  // `tasker cancel` reaches a running tasker two ways: a request file in the run's directory
  // (checked every second) and, with a broker, a message on the control exchange.
  let cancel = () => {};
  const transports = await transportsFor(config, run, log, () => cancel());
  let opened: Awaited<ReturnType<typeof openSession>>;
  try {
    opened = await openSession({
      stateDir: config.stateDir,
      runId: run,
      mode: transports.parallel.mode,
      command: request.command,
      log,
      plan: request.plan,
    });
  } catch (error) {
    await Promise.all([transports.parallel.close(), transports.serial.close()]);
    throw error;
  }
  const { session, plans } = opened;
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
    `${session.resumed ? 'resuming' : 'started'} run ${run}: ${transports.parallel.mode} mode, ${transports.parallel.description} (${transports.why}); ${plural(plans.length, 'phase')}`,
  );
  const progress =
    isReadable(config.logFormat) && plans.length > 0
      ? new (await import('../observe/progress.js')).Progress(plans.map((plan) => plan.name))
      : undefined;
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
    },
    runLog,
    (update) => progress?.update(update),
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
        `phase ${index + 1}/${plans.length} ${plan.name}: ${plural(plan.total, `${plan.kind} task`)}`,
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
    const failed = summaries.some((summary) => summary.failed > 0);
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
    else if (!failed) runLog.info(`run ${run} succeeded`);
  } finally {
    progress?.stop();
    removeHandlers();
    clearInterval(cancelWatch);
    rmSync(cancelFile, { force: true });
    // A finished or cancelled run needs its results queue no more (workers drop the tasks of a
    // run whose queue is gone); an interrupted one keeps it for the resume.
    if (transports.rabbit && cancelled) await transports.rabbit.deleteResultsQueue({ force: true });
    else if (
      transports.rabbit &&
      !request.noWait &&
      (exitCode === EXIT.OK || exitCode === EXIT.TASKS_FAILED)
    ) {
      // Every phase that ran passed its barrier: each task published has a final outcome in
      // the ledger, and no attempt is published after that. Whatever is left is of an attempt
      // recorded already (kept in memory for a million tasks, this check would cost ~25 MB).
      const left = await transports.rabbit.deleteResultsQueue({ redundant: () => true });
      if (left > 0)
        runLog.warn(
          `kept results queue \`${transports.rabbit.resultsQueue}\`: ${left} message(s) still in it`,
        );
    }
    await Promise.all([transports.parallel.close(), transports.serial.close()]);
    await session.close(exitCode);
    view?.close();
  }
  return exitCode;
}
