import { constants } from 'node:os';
import { resolve } from 'node:path';
import { formatDuration } from '../shared/duration.js';
import { PROTOCOL_VERSION, type TaskMessage, type TaskResult } from '../shared/protocol.js';
import type { LaunchEnd, Launcher } from './launcher.js';
import type { OomCounter } from './oom.js';
import type { SlotLog } from './slotLog.js';

/** Where and as whom a task runs. */
export interface TaskContext {
  readonly launcher: Launcher;
  /** Directory a task without its own `workdir` runs in (the worker's --workdir). */
  readonly workdir: string;
  /** The slot's log files, in the state dir's `runs/<run>/logs`. */
  readonly log: SlotLog;
  /** Name of this worker slot, recorded with the result (`local-1`, `worker-7f9c-2`). */
  readonly worker: string;
  readonly host: string;
  /** The cgroup's OOM-kill counter, where there is one: tells OOM kills from other SIGKILLs. */
  readonly oom?: OomCounter | undefined;
}

const signalNames = new Map(
  Object.entries(constants.signals).map(([name, number]) => [number, name]),
);
/**
 * Runs one task to its end and describes how it went. This is the one place that runs a
 * command, used alike by the local pool, the tasker's serial steps and the worker. A failing
 * command is a failed result, never an exception.
 */
export async function runTask(task: TaskMessage, context: TaskContext): Promise<TaskResult> {
  const startedAt = new Date();
  try {
    return await attempt(task, context, startedAt);
  } catch (error) {
    // Not the command's fault: a log file or directory of the worker's own failed. The attempt
    // fails (and is retried, perhaps elsewhere); the worker goes on.
    return {
      v: PROTOCOL_VERSION,
      run: task.run,
      phase: task.phase,
      task: task.task,
      attempt: task.attempt,
      state: 'failed',
      failure: 'infra',
      reason: `the worker could not run it: ${error instanceof Error ? error.message : String(error)}`,
      exitCode: null,
      signal: null,
      worker: context.worker,
      host: context.host,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      logs: null,
      stdoutTail: '',
      stderrTail: '',
    };
  }
}

async function attempt(
  task: TaskMessage,
  context: TaskContext,
  startedAt: Date,
): Promise<TaskResult> {
  const log = context.log.begin(task);
  const oomBefore = context.oom?.read();
  const end = await context.launcher.run({
    command: task.command,
    workdir: task.workdir === undefined ? context.workdir : resolve(context.workdir, task.workdir),
    env: {
      WARREN_RUN_ID: task.run,
      WARREN_PHASE: task.phase,
      WARREN_TASK_ID: task.task,
      WARREN_ATTEMPT: String(task.attempt),
    },
    stdoutPath: log.stdoutPath,
    stderrPath: log.stderrPath,
    header: log.header,
    timeoutMs: task.timeoutMs,
  });
  return {
    v: PROTOCOL_VERSION,
    run: task.run,
    phase: task.phase,
    task: task.task,
    attempt: task.attempt,
    ...oomOrNot(describeEnd(end, task.timeoutMs), oomBefore, context.oom?.read()),
    worker: context.worker,
    host: context.host,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    ...context.log.finish(log),
  };
}

type Outcome = Pick<TaskResult, 'state' | 'failure' | 'reason' | 'exitCode' | 'signal'>;

/**
 * A task that died of SIGKILL (or took its slot's shell with it) while the cgroup's OOM-kill
 * count went up was killed by the OOM killer.
 */
function oomOrNot(
  outcome: Outcome,
  before: number | undefined,
  after: number | undefined,
): Outcome {
  const killed = outcome.signal === 'SIGKILL' || outcome.failure === 'lost';
  if (
    before === undefined ||
    after === undefined ||
    after <= before ||
    !killed ||
    outcome.failure === 'timeout'
  )
    return outcome;
  return {
    ...outcome,
    failure: 'oom',
    reason: `killed by the kernel's OOM killer (the memory limit of its container or cgroup; exit ${outcome.exitCode ?? 'none'})`,
  };
}

/** Turns how the shell ended into an outcome value. */
export function describeEnd(end: LaunchEnd, timeoutMs: number): Outcome {
  switch (end.kind) {
    case 'exited': {
      if (end.status === 0) {
        return { state: 'succeeded', failure: null, reason: null, exitCode: 0, signal: null };
      }
      // The shell reports a command killed by signal N as 128+N.
      const signal = end.status > 128 ? signalNames.get(end.status - 128) : undefined;
      if (signal) {
        return {
          state: 'failed',
          failure: 'signal',
          reason: `killed by ${signal} (exit ${end.status})`,
          exitCode: end.status,
          signal,
        };
      }
      return {
        state: 'failed',
        failure: 'exit',
        reason: `exit ${end.status}`,
        exitCode: end.status,
        signal: null,
      };
    }
    case 'stopped':
      return end.why === 'timeout'
        ? {
            state: 'failed',
            failure: 'timeout',
            reason: `timed out after ${formatDuration(timeoutMs)} (stopped with ${end.signal})`,
            exitCode: null,
            signal: end.signal,
          }
        : {
            state: 'cancelled',
            failure: null,
            reason: `cancelled (stopped with ${end.signal})`,
            exitCode: null,
            signal: end.signal,
          };
    case 'lost':
      return { state: 'failed', failure: 'lost', reason: end.detail, exitCode: null, signal: null };
  }
}
