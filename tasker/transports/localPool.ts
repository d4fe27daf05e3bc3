import { hostname } from 'node:os';
import { Launcher } from '../../exec/launcher.js';
import { OomCounter } from '../../exec/oom.js';
import { runTask, type TaskContext, uploadsFor } from '../../exec/runTask.js';
import { SlotLog } from '../../exec/slotLog.js';
import type { S3Settings } from '../../shared/config/s3.js';
import type { TaskMessage, TaskResult } from '../../shared/protocol.js';
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
 * The embedded transport: `slots` shells on this machine running tasks through the same
 * `runTask` as a worker. Holds at most one waiting task per slot, so reading a phase of a
 * million lines costs no memory.
 */
export class LocalPool implements Transport {
  readonly mode = 'local';
  readonly description: string;
  private readonly idle: TaskContext[];
  private readonly busy = new Set<TaskContext>();
  private readonly queue: TaskMessage[] = [];
  private readonly capacity: number;
  private listener: TransportListener | undefined;
  /** Submitters waiting for room: the main loop and, at times, a retry. */
  private room: (() => void)[] = [];
  private drained: (() => void) | undefined;

  constructor(options: LocalPoolOptions) {
    const host = hostname();
    const oom = OomCounter.locate();
    const prefix = options.prefix ?? 'local';
    const uploads = uploadsFor(options.s3, [], options.stateDir);
    this.capacity = options.slots;
    this.description = `local pool, ${options.slots} slot${options.slots === 1 ? '' : 's'}`;
    this.idle = Array.from({ length: options.slots }, (_, i) => ({
      launcher: new Launcher({
        env: options.env,
        graceMs: options.killGraceMs,
        onShellError: options.onShellError,
      }),
      workdir: options.workdir,
      log: new SlotLog(options.stateDir, `${prefix}-${i + 1}`),
      worker: `${prefix}-${i + 1}`,
      host,
      oom,
      uploads,
    })).reverse();
  }

  listen(listener: TransportListener): void {
    this.listener = listener;
  }

  async submit(task: TaskMessage): Promise<void> {
    this.queue.push(task);
    this.pump();
    while (this.queue.length >= this.capacity) {
      await new Promise<void>((resolve) => {
        this.room.push(resolve);
      });
    }
  }

  async cancel(): Promise<void> {
    this.queue.length = 0;
    this.wake();
    const running = [...this.busy];
    if (running.length === 0) return;
    const settled = new Promise<void>((resolve) => {
      this.drained = resolve;
    });
    await Promise.all(running.map((slot) => slot.launcher.stop('cancel')));
    await settled;
  }

  async close(): Promise<void> {
    await this.cancel();
    await Promise.all(this.idle.map((slot) => slot.launcher.close()));
    for (const slot of this.idle) slot.log.close();
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const slot = this.idle.pop() as TaskContext;
      const task = this.queue.shift() as TaskMessage;
      this.busy.add(slot);
      void this.runOn(slot, task);
    }
    this.wake();
  }

  private wake(): void {
    if (this.queue.length < this.capacity && this.room.length > 0) {
      const waiting = this.room;
      this.room = [];
      for (const resolve of waiting) resolve();
    }
  }

  private async runOn(slot: TaskContext, task: TaskMessage): Promise<void> {
    const listener = this.listener;
    if (!listener) throw new Error('LocalPool.listen() must be called before submit()');
    let result: TaskResult | undefined;
    try {
      listener.started(task.task, task.attempt, slot.worker, new Date());
      result = await runTask(task, slot);
    } catch (error) {
      listener.fatal(error);
    }
    // Start the slot's next task before the bookkeeping of this one: it keeps the shells busy.
    this.busy.delete(slot);
    this.idle.push(slot);
    this.pump();
    if (result) {
      // Nothing to acknowledge locally, so nothing waits for the ledger's flush.
      Promise.resolve(listener.result(result, task)).catch((error: unknown) =>
        listener.fatal(error),
      );
    }
    if (this.busy.size === 0 && this.drained) {
      const drained = this.drained;
      this.drained = undefined;
      drained();
    }
  }
}
