import { MINUTE } from '../../shared/duration.js';
import { type FailureClass, isKnownFailure, type TaskResult } from '../../shared/protocol.js';

/**
 * The failure classes worth another attempt: the command may well succeed next time (on
 * another worker, with more memory free, once the disk has room).
 *
 * Not retried: `lost` (the broker's delivery limit ran out: the task already had its tries,
 * each of which killed or lost whatever ran it) and `rejected` (a bad message fails the same
 * way again). A class added to the protocol is not retried until someone adds it here.
 *
 * A class this tasker does not know (a newer or foreign worker's) is retried as `exit` is: see
 * `retriedAs`.
 */
export const RETRIED_FAILURES: readonly FailureClass[] = [
  'exit',
  'signal',
  'timeout',
  'oom',
  'upload',
  'infra',
  'unreadable', // its result could not be read: the next attempt's may well be
];

/** The longest wait before a retry, however many came before it. */
export const MAX_RETRY_DELAY = MINUTE;

/** How a run retries failed attempts (`--retries`, `--retry-delay`). */
export interface RetryOptions {
  /** Retries of a task per session, after its first attempt of the session. */
  readonly retries: number;
  /** Wait before the first retry, in ms; doubled for each later one, up to `MAX_RETRY_DELAY`. */
  readonly retryDelayMs: number;
}

/**
 * Whether a failed attempt runs again, and after how long. Attempts are counted from the task's
 * first attempt of this session, so a resumed run gives a task that failed before its retries
 * again.
 */
export class RetryPolicy {
  private readonly retried: ReadonlySet<string> = new Set(RETRIED_FAILURES);

  constructor(private readonly options: RetryOptions) {}

  /** Retries a task gets per session. */
  get retries(): number {
    return this.options.retries;
  }

  /**
   * Which retry the attempt after `result` is (1 for the first), or 0 when `result` is final:
   * it succeeded, was cancelled, failed in a class not retried, or used up its retries.
   * `first` is the task's first attempt of this session.
   */
  retryOf(result: TaskResult, first: number): number {
    if (result.state !== 'failed') return 0;
    if (!this.retried.has(retriedAs(result))) return 0;
    const retry = result.attempt - first + 1;
    return retry <= this.options.retries ? retry : 0;
  }

  /** How long retry number `retry` (1 for the first) waits, in ms. */
  delayMs(retry: number): number {
    return Math.min(this.options.retryDelayMs * 2 ** (retry - 1), MAX_RETRY_DELAY);
  }
}

/**
 * The class a failed result is retried as: its own, if this tasker knows it; `exit` for a class
 * it does not know (a newer or foreign worker's: most likely its command failed) and for none.
 * The ledger keeps the class as given; only the decision to retry reads it this way.
 */
export function retriedAs(result: Pick<TaskResult, 'failure'>): FailureClass {
  const failure = result.failure;
  return failure !== null && isKnownFailure(failure) ? failure : 'exit';
}
