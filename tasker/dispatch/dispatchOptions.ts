import type { PublishOrder } from './publishOrder.js';
import type { RetryOptions } from './retryPolicy.js';

/** How the dispatcher runs a run's phases. */
export interface DispatchOptions extends RetryOptions {
  readonly run: string;
  /** Time limit of each attempt, in ms, 0 for none (`--timeout`): sent with each task. */
  readonly timeoutMs: number;
  /** Goes on past a task failed for good: to the next step of a serial phase (`--keep-going`). */
  readonly keepGoing: boolean;
  /**
   * At most this many tasks in the run, planned and spawned together: spawned tasks past it
   * are dropped, with a warning (`--max-tasks`).
   */
  readonly maxTasks?: number;
  /** Tasks the run's phases plan, all phases together (for `maxTasks`). */
  readonly plannedTasks?: number;
  /** Globs of outputs each task uploads to S3 after it succeeds (`--upload`). */
  readonly upload?: readonly string[];
  /**
   * A parallel phase's barrier is "the transport holds every task" (its `queued` reports),
   * not "every task has a final outcome": `tasker send --no-wait` publishes and leaves, and
   * keeps nothing per task.
   */
  readonly noWait?: boolean;
  /**
   * A task of a phase whose attempt is nowhere (not on the broker, not held or running on a
   * worker, not finished) for this long vanished and is published again, in ms; 0 says so and
   * publishes nothing (`WARREN_LOST_AFTER`). @defaultValue 1 minute
   */
  readonly lostAfterMs?: number;
  /**
   * The order a parallel phase's tasks are published in: longest expected first, or as the
   * phase file has them (`--order`). @defaultValue `longest`
   */
  readonly order?: PublishOrder;
  /**
   * How long a command took the last time it succeeded in a run of the state dir, in ms
   * (tasker/history): orders the phases and makes their ETA. @defaultValue none: file order
   */
  readonly expectedMs?: ((command: string) => number | undefined) | undefined;
}
