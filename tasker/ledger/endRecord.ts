import type { TaskResult } from '../../shared/protocol.js';
import type { EndRecord } from './ledger.js';

/** Bytes of a failed attempt's output kept in its `end` record (the rest is in its logs). */
const TAIL_KEPT = 2048;

/** The end of what a failed attempt printed: stderr, or stdout when stderr is empty. */
function errorTail(result: TaskResult): string {
  if (result.state === 'succeeded') return '';
  const tail = result.stderrTail.trim() === '' ? result.stdoutTail : result.stderrTail;
  return tail.length > TAIL_KEPT ? tail.slice(-TAIL_KEPT) : tail;
}

/**
 * The ledger's record of an attempt's result (the dispatcher's, and `tasker collect`'s).
 * `final` is false when the attempt will be retried.
 */
export function endRecordOf(
  result: TaskResult,
  task: { readonly phase: string; readonly command: string; readonly final: boolean },
): EndRecord {
  return {
    type: 'end',
    at: new Date().toISOString(),
    task: result.task,
    phase: task.phase,
    command: task.command,
    attempt: result.attempt,
    state: result.state,
    final: task.final,
    failure: result.failure,
    reason: result.reason,
    worker: result.worker,
    host: result.host,
    startedAt: result.startedAt,
    finishedAt: result.finishedAt,
    exitCode: result.exitCode,
    signal: result.signal,
    errorTail: errorTail(result),
    logs: result.logs,
    ...(result.uploaded?.length ? { uploaded: result.uploaded } : {}),
    ...(result.uploadMs !== undefined ? { uploadMs: result.uploadMs } : {}),
  };
}
