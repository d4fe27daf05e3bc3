import type { TaskMessage, TaskResult } from '../../shared/protocol.js';

/** What a transport reports back to the dispatcher. */
export interface TransportListener {
  /** The broker confirmed it holds these tasks (durable transports only): worth recording. */
  queued(tasks: readonly TaskMessage[]): void;
  /** A worker slot started an attempt (transports that can tell). */
  started(task: string, attempt: number, worker: string, at: Date): void;
  /**
   * An attempt ended. The transport acknowledges the result only after the returned promise
   * resolves, that is after the ledger has it: nothing is lost if the tasker dies in between.
   * A transport that still holds the task passes it along (it saves reading the command back).
   */
  result(result: TaskResult, task?: TaskMessage): void | Promise<void>;
  /** The transport cannot go on (the ledger cannot be written, the broker is gone for good). */
  fatal(error: unknown): void;
}

/**
 * How parallel tasks travel: a local pool of slots, or RabbitMQ. The dispatcher (phases,
 * barriers, retries, ledger, resume) is written once against this.
 */
export interface Transport {
  /** Said at the start of a run: `local pool, 2 slots`. */
  readonly description: string;
  /** `local` or `rabbitmq`, recorded in the ledger. */
  readonly mode: string;
  /**
   * Starts telling `listener`. With `results: false` (a `send --no-wait` phase) a broker
   * transport leaves results in the run's queue for `tasker collect`, and only reports what
   * it published.
   */
  listen(listener: TransportListener, options?: { readonly results?: boolean }): void;
  /** Hands over one task; resolves when the transport has room for more. */
  submit(task: TaskMessage): Promise<void>;
  /**
   * The tasker is being interrupted: a local transport stops its running tasks (their results
   * say `cancelled`) and drops those not started; a broker leaves them to the workers.
   */
  cancel(): Promise<void>;
  close(): Promise<void>;
}
