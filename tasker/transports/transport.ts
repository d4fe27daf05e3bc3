import type { TaskMessage, TaskResult } from '../../shared/protocol.js';

/** What a transport reports back to the dispatcher. */
export interface TransportListener {
  /** The broker confirmed it holds these tasks (durable transports only): worth recording. */
  queued(tasks: readonly TaskMessage[]): void;
  /** A worker slot started an attempt (transports that can tell). */
  started(task: string, attempt: number, worker: string, at: Date): void;
  /**
   * A worker holds or runs these attempts (`[task, attempt]`) of `run`: a lease, renewed every
   * lease interval while it lasts (transports that can tell).
   */
  leased?(
    run: string,
    tasks: readonly (readonly [string, number])[],
    worker: string,
    at: Date,
  ): void;
  /**
   * An attempt ended. The transport acknowledges the result only after the returned promise
   * resolves, that is after the ledger has it: nothing is lost if the tasker dies in between.
   * A transport that still holds the task passes it along (it saves reading the command back).
   */
  result(result: TaskResult, task?: TaskMessage): void | Promise<void>;
  /** The transport cannot go on (the ledger cannot be written, the broker is gone for good). */
  fatal(error: unknown): void;
}

/** What a broker says of the task queue, for the barrier's accounting and for status. */
export interface QueueView {
  /** The task queue, by name. */
  readonly queue: string;
  /** Tasks ready in it (not counting those delivered and not acknowledged; a batch counts as its tasks). */
  readonly ready: number;
  /** Consumers on it: workers taking tasks. */
  readonly consumers: number;
  /** It did not exist (deleted): the transport declared it again, empty. */
  readonly recreated: boolean;
}

/**
 * How a run ended, as far as its transport is concerned: `finished` (every phase that ran
 * passed its barrier, succeeded or failed), `cancelled` (`tasker cancel`: nothing of it runs
 * again) or `interrupted` (stopped or failed half-way: a resume goes on with it).
 */
export type RunEnd = 'finished' | 'cancelled' | 'interrupted';

/**
 * How parallel tasks travel: a local pool of slots, or RabbitMQ. The dispatcher (phases,
 * barriers, retries, ledger, resume) and the commands (`run`, `collect`, `cancel`) are
 * written once against this; nothing but a transport knows a broker is there.
 */
export interface Transport {
  /** Said at the start of a run: `local pool, 2 slots`. */
  readonly description: string;
  /** `local` or `rabbitmq`, recorded in the ledger. */
  readonly mode: string;
  /**
   * The size classes (`--classes`, smallest first) a task can be published to, by its `class`:
   * a task the OOM killer killed goes to the next. Absent or empty: none (a local pool).
   */
  readonly sizeClasses?: readonly string[];
  /**
   * Starts telling `listener`. (A broker transport opened to leave results for `tasker
   * collect`, a `send --no-wait` run, only reports what it published.)
   */
  listen(listener: TransportListener): void;
  /**
   * `phase`'s tasks took `meanMs` on average in `count` attempts of earlier sessions of the run:
   * a transport that batches short tasks sizes its batches by it from the start (optional).
   */
  expect?(phase: string, meanMs: number, count: number): void;
  /** Hands over one task; resolves when the transport has room for more. */
  submit(task: TaskMessage): Promise<void>;
  /**
   * The tasker is being interrupted: a local transport stops its running tasks (their results
   * say `cancelled`) and drops those not started; a broker leaves them to the workers. Either
   * way it takes no more tasks: one submitted afterwards stays unrun, and a resume runs it.
   */
  cancel(): Promise<void>;
  /**
   * Tells whoever runs the run's tasks elsewhere (the workers) that the run is cancelled: they
   * stop its running tasks and drop its queued ones. False when there is nobody to tell (a
   * local pool: its tasker hears of a cancel from the request file in the run's directory).
   */
  announceCancel(): Promise<boolean>;
  /**
   * What the broker holds of the task queue (or of a size class's queue), asked now; a queue
   * found deleted is declared again. Only where tasks wait on a broker (absent for a local pool, whose tasks are always
   * its own to account for).
   */
  view?(sizeClass?: string): Promise<QueueView>;
  /** Results of the run waiting to be read (0 where results never wait, as in a local pool). */
  waiting(): Promise<number>;
  /**
   * What the end of the run means for what the transport keeps: a broker deletes the run's
   * results queue once finished (if all left in it is recorded already; it says so and keeps
   * it otherwise) or cancelled, and keeps it for the resume when interrupted.
   */
  finish(end: RunEnd): Promise<void>;
  close(): Promise<void>;
}
