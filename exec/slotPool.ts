import { hostname } from 'node:os';
import type { S3Settings } from '../shared/config/s3.js';
import type { TaskMessage, TaskResult } from '../shared/protocol.js';
import { Launcher } from './launcher.js';
import { OomCounter } from './oom.js';
import { runTask, type TaskContext, uploadsFor } from './runTask.js';
import { SlotLog } from './slotLog.js';

/** The slots of one process: how many, what they are called, where and how they run tasks. */
export interface SlotPoolOptions {
  /** Slots, that is tasks at once. */
  readonly slots: number;
  /** Slot names are `<prefix>-1`, `<prefix>-2`, ... (`local-1`, `worker-7f9c-2`). */
  readonly prefix: string;
  /** Directory a task without its own `workdir` runs in. */
  readonly workdir: string;
  /** Where slot logs go (`runs/<run>/logs`); never uploaded from. */
  readonly stateDir: string;
  /** Time between SIGTERM and SIGKILL when a task is stopped, in ms. */
  readonly killGraceMs: number;
  /** Environment every task starts from (Warren's own secrets already removed). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Hears what a slot's shell writes to its own stderr. */
  readonly onShellError?: ((line: string) => void) | undefined;
  /** Where tasks' outputs are uploaded, when a bucket is set. */
  readonly s3?: S3Settings | undefined;
  /** Globs uploaded after every task, besides the task's own (`worker --upload`). @defaultValue none */
  readonly uploadGlobs?: readonly string[];
}

/** How a job's run on its slot ended: the task's result, or what kept it from running. */
export type SlotOutcome =
  | { readonly result: TaskResult; readonly error?: undefined }
  | { readonly result?: undefined; readonly error: unknown };

/** What the pool's owner does around each job; all but `ended` optional. */
export interface SlotHooks<J> {
  /**
   * A waiting job is about to get a slot: false drops it (the hook has dealt with it, say
   * acknowledged a delivery whose result came in meanwhile), and the slot goes to the next.
   */
  readonly admit?: (job: J) => boolean;
  /** The job has its slot and its task starts now (said before the command runs). */
  readonly starting?: (job: J, slot: TaskContext) => void;
  /**
   * The task ended and its slot is free again (the next job already started on it): the
   * owner's bookkeeping (report, acknowledge). The job counts as `finishing` until this settles.
   */
  readonly ended: (job: J, outcome: SlotOutcome, slot: TaskContext) => void | Promise<void>;
}

/**
 * The slots of a process (the tasker's local pool, a worker), each a launcher with its slot
 * log and name: hands a free slot to the next waiting job, runs its task with `runTask`, frees
 * the slot and starts the next job before the owner's bookkeeping (it keeps the shells busy),
 * stops running tasks, and closes the shells.
 */
export class SlotPool<J extends { readonly task: TaskMessage }> {
  /** How many slots. */
  readonly size: number;
  private readonly free: TaskContext[];
  private readonly busy = new Map<TaskContext, J>();
  private waitingJobs: J[] = [];
  private holding = false;
  private taken = 0;
  private settledWaiters: (() => void)[] = [];

  constructor(
    options: SlotPoolOptions,
    private readonly hooks: SlotHooks<J>,
  ) {
    const host = hostname();
    const oom = OomCounter.locate();
    const uploads = uploadsFor(options.s3, options.uploadGlobs ?? [], options.stateDir);
    this.size = options.slots;
    // Reversed, as slots are taken from the end: the first task goes to `<prefix>-1`.
    this.free = Array.from({ length: options.slots }, (_, i) => {
      const name = `${options.prefix}-${i + 1}`;
      return {
        launcher: new Launcher({
          env: options.env,
          graceMs: options.killGraceMs,
          onShellError: options.onShellError,
        }),
        workdir: options.workdir,
        log: new SlotLog(options.stateDir, name),
        worker: name,
        host,
        oom,
        uploads,
      };
    }).reverse();
  }

  /** Slots running a task now. */
  get running(): number {
    return this.busy.size;
  }

  /** Jobs waiting for a slot. */
  get waiting(): number {
    return this.waitingJobs.length;
  }

  /** Jobs given a slot whose `ended` hook has not settled yet (running ones included). */
  get finishing(): number {
    return this.taken;
  }

  /** The jobs running now. */
  runningJobs(): J[] {
    return [...this.busy.values()];
  }

  /** Queues a job and starts it at once if a slot is free. */
  add(job: J): void {
    this.waitingJobs.push(job);
    this.pump();
  }

  /** Forgets the jobs waiting for a slot (those `which` picks, or all), and returns them. */
  dropWaiting(which?: (job: J) => boolean): J[] {
    if (!which) {
      const dropped = this.waitingJobs;
      this.waitingJobs = [];
      return dropped;
    }
    const dropped = this.waitingJobs.filter(which);
    this.waitingJobs = this.waitingJobs.filter((job) => !which(job));
    return dropped;
  }

  /** Hands out no more slots (a shutdown): waiting jobs stay waiting, running ones go on. */
  hold(): void {
    this.holding = true;
  }

  /** Stops the task of a running job (its result says `cancelled`); resolves once it is gone. */
  stop(job: J): Promise<void> {
    for (const [slot, running] of this.busy)
      if (running === job) return slot.launcher.stop('cancel');
    return Promise.resolve();
  }

  /** Stops every running task; resolves once they are all gone. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.busy.keys()].map((slot) => slot.launcher.stop('cancel')));
  }

  /** Resolves once no slot runs a task. */
  idle(): Promise<void> {
    return this.until(() => this.busy.size === 0);
  }

  /** Resolves once every job given a slot is through its `ended` hook. */
  settled(): Promise<void> {
    return this.until(() => this.taken === 0);
  }

  /** Ends the slots' shells and closes their logs (call once nothing runs). */
  async close(): Promise<void> {
    await Promise.all(this.free.map((slot) => slot.launcher.close()));
    for (const slot of this.free) slot.log.close();
  }

  private pump(): void {
    while (!this.holding && this.free.length > 0 && this.waitingJobs.length > 0) {
      const job = this.waitingJobs.shift() as J;
      if (this.hooks.admit && !this.hooks.admit(job)) continue;
      void this.runOn(this.free.pop() as TaskContext, job);
    }
  }

  private async runOn(slot: TaskContext, job: J): Promise<void> {
    this.taken++;
    this.busy.set(slot, job);
    try {
      let outcome: SlotOutcome;
      try {
        this.hooks.starting?.(job, slot);
        outcome = { result: await runTask(job.task, slot) };
      } catch (error) {
        outcome = { error };
      } finally {
        // Start the slot's next task before the bookkeeping of this one: it keeps the shells busy.
        this.busy.delete(slot);
        this.free.push(slot);
        this.pump();
        this.notify();
      }
      await this.hooks.ended(job, outcome, slot);
    } finally {
      this.taken--;
      this.notify();
    }
  }

  private until(done: () => boolean): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (done()) resolve();
        else this.settledWaiters.push(check);
      };
      this.settledWaiters.push(check);
    });
  }

  private notify(): void {
    const waiters = this.settledWaiters;
    this.settledWaiters = [];
    for (const check of waiters) check();
  }
}
