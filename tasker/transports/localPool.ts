import { SlotPool } from '../../exec/index.js';
import type { S3Settings } from '../../shared/config/s3.js';
import type { TaskMessage } from '../../shared/protocol.js';
import type { Transport, TransportListener } from './transport.js';

export interface LocalPoolOptions {
  readonly slots: number;
  readonly workdir: string;
  readonly stateDir: string;
  readonly killGraceMs: number;
  /** Environment every task starts from (Warren's own secrets already removed). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Slot names are `<prefix>-1`, `<prefix>-2`, ... @defaultValue `local` */
  readonly prefix?: string;
  /** Hears what a slot's shell writes to its own stderr. */
  readonly onShellError?: (line: string) => void;
  /** Where tasks' outputs are uploaded, when a bucket is set. */
  readonly s3?: S3Settings | undefined;
}

/**
 * The embedded transport: `slots` shells on this machine running tasks through the same slot
 * pool as a worker. Holds at most one waiting task per slot, so reading a phase of a million
 * lines costs no memory.
 */
export class LocalPool implements Transport {
  readonly mode = 'local';
  readonly description: string;
  private readonly pool: SlotPool<{ readonly task: TaskMessage }>;
  private listener: TransportListener | undefined;
  /** Submitters waiting for room: the main loop and, at times, a retry. */
  private room: (() => void)[] = [];
  /** Cancelled: takes no more tasks (as a broker transport, which publishes no more). */
  private interrupted = false;

  constructor(options: LocalPoolOptions) {
    this.description = `local pool, ${options.slots} slot${options.slots === 1 ? '' : 's'}`;
    this.pool = new SlotPool(
      { ...options, prefix: options.prefix ?? 'local' },
      {
        starting: ({ task }, slot) => {
          this.wake();
          this.listener?.started(task.task, task.attempt, slot.worker, new Date());
        },
        ended: ({ task }, { result, error }) => {
          const listener = this.listener;
          if (!listener) return;
          if (!result) {
            listener.fatal(error);
            return;
          }
          // Nothing to acknowledge locally, so nothing waits for the ledger's flush.
          Promise.resolve(listener.result(result, task)).catch((failure: unknown) =>
            listener.fatal(failure),
          );
        },
      },
    );
  }

  listen(listener: TransportListener): void {
    this.listener = listener;
  }

  async submit(task: TaskMessage): Promise<void> {
    if (!this.listener) throw new Error('LocalPool.listen() must be called before submit()');
    // Submitted after an interrupt (a task spawned by one that just ended): it stays unrun and
    // unrecorded, and a resume runs it.
    if (this.interrupted) return;
    this.pool.add({ task });
    while (this.pool.waiting >= this.pool.size) {
      await new Promise<void>((resolve) => {
        this.room.push(resolve);
      });
    }
  }

  async cancel(): Promise<void> {
    this.interrupted = true;
    this.pool.dropWaiting();
    this.wake();
    await this.pool.stopAll();
    await this.pool.idle();
  }

  /** Nobody else runs a local run's tasks: its tasker hears of a cancel from the request file. */
  async announceCancel(): Promise<boolean> {
    return false;
  }

  /** Results are handed over as they come: none ever wait. */
  async waiting(): Promise<number> {
    return 0;
  }

  /** A local run keeps nothing outside its state directory. */
  async finish(): Promise<void> {}

  async close(): Promise<void> {
    await this.cancel();
    await this.pool.close();
  }

  private wake(): void {
    if (this.pool.waiting < this.pool.size && this.room.length > 0) {
      const waiting = this.room;
      this.room = [];
      for (const resolve of waiting) resolve();
    }
  }
}
