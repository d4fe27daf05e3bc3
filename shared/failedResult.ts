import { PROTOCOL_VERSION } from './contract.js';
import type { FailureClass, TaskMessage, TaskResult } from './protocol.js';

/** Why and where an attempt failed, for a result built by Warren rather than by a command. */
export interface Failure {
  readonly failure: FailureClass;
  /** One line for people. */
  readonly reason: string;
  /** The worker slot that ran the attempt; empty when none did (the broker gave up on it). */
  readonly worker: string;
  /** Its host; empty when no worker ran the attempt. */
  readonly host: string;
  /** When the attempt started, ISO 8601. */
  readonly startedAt: string;
  /** When it ended, ISO 8601. @defaultValue now */
  readonly finishedAt?: string;
}

/**
 * The result of an attempt that failed without its command saying so (the worker could not
 * run it, died with it, or the broker gave up on it): no exit code, no signal, no output.
 */
export function failedResult(
  task: Pick<TaskMessage, 'run' | 'phase' | 'task' | 'attempt'>,
  failure: Failure,
): TaskResult {
  return {
    v: PROTOCOL_VERSION,
    run: task.run,
    phase: task.phase,
    task: task.task,
    attempt: task.attempt,
    state: 'failed',
    failure: failure.failure,
    reason: failure.reason,
    worker: failure.worker,
    host: failure.host,
    startedAt: failure.startedAt,
    finishedAt: failure.finishedAt ?? new Date().toISOString(),
    exitCode: null,
    signal: null,
    stdoutTail: '',
    stderrTail: '',
    logs: null,
  };
}
