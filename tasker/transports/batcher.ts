import type { Logger } from '../../shared/logger.js';
import type { TaskMessage, TaskResult } from '../../shared/protocol.js';

/**
 * How much work one batch carries, in ms of its tasks' durations so far: small, so that a long
 * task in a phase of short ones waits behind a quarter of a second of others at most.
 */
export const BATCH_WORK_MS = 250;
/** Most tasks in one batch. */
export const MAX_BATCH_SIZE = 64;
/** Tasks of a phase published one to a message, awaiting results, before anything is known. */
const PROBE_TASKS = 16;
/** Results of a phase it takes to size its batches. */
const PROBE_RESULTS = 4;
/**
 * With no results this long after workers took its first tasks, a phase's tasks are long: one
 * to a message.
 */
const PROBE_WAIT_MS = 1000;
/** How much each new duration moves a phase's running mean. */
const WEIGHT = 0.1;

/** What the batcher knows of one phase's tasks. */
interface PhaseShape {
  /** Results seen, and their running mean duration in ms. */
  results: number;
  meanMs: number;
  /** Tasks handed over and not seen ending (while probing). */
  out: number;
  /** When its first task was handed over, or the probe last found some still in the queue. */
  since: number;
  /** Its first tasks ran longer than the probe waits: the rest go one to a message, at once. */
  long: boolean;
  /** Batch size said last (0: none yet), so that going from one to many is said once. */
  said: number;
  /** Its durations came from earlier sessions of the run, not from this one's results. */
  earlier: boolean;
}

export interface BatcherOptions {
  /** Publishes one message of tasks; resolves when there is room for more. */
  readonly publish: (tasks: readonly TaskMessage[]) => Promise<void>;
  /** Largest batch; 1 publishes every task on its own. @defaultValue MAX_BATCH_SIZE */
  readonly maxSize?: number | undefined;
  /**
   * Messages waiting in the task queue (undefined: not known). While a phase's first tasks
   * wait there, no worker has them yet, and their results being late says nothing of them.
   */
  readonly waiting?: () => Promise<number | undefined>;
  readonly log: Logger;
}

/**
 * Gathers a phase's tasks into batches when they are short: unless an earlier session of the
 * run timed them (`expect`), the first tasks of a phase go one to a message (at most
 * PROBE_TASKS awaiting results, until workers have had them for PROBE_WAIT_MS); their
 * durations then size the batches, BATCH_WORK_MS of work each, from 1 (long tasks) to
 * MAX_BATCH_SIZE. A batch goes out when it is full, or as soon as nobody hands over more tasks
 * in this turn of the event loop (a serial step, a retry, the end of a phase).
 */
export class Batcher {
  private readonly phases = new Map<string, PhaseShape>();
  private pending: TaskMessage[] = [];
  private scheduled = false;
  private failure: unknown;
  private waiters: (() => void)[] = [];
  private readonly maxSize: number;

  constructor(private readonly options: BatcherOptions) {
    this.maxSize = Math.max(1, options.maxSize ?? MAX_BATCH_SIZE);
  }

  /** Takes one task; resolves when there is room for more. */
  async add(task: TaskMessage): Promise<void> {
    const shape = this.shapeOf(task.phase);
    await this.probing(shape);
    const first = this.pending[0];
    // A batch is of one run, one phase and one size class: another flushes what is gathered.
    if (
      first &&
      (first.phase !== task.phase || first.run !== task.run || first.class !== task.class)
    )
      await this.flush();
    this.pending.push(task);
    shape.out++;
    if (this.pending.length >= this.sizeOf(task.phase, shape)) await this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush().catch((error: unknown) => {
          this.failure ??= error;
        });
      });
    }
    if (this.failure) throw this.failure;
  }

  /** A result came: its duration shapes the batches of its phase. */
  observe(result: TaskResult): void {
    const shape = this.phases.get(result.phase);
    if (!shape) return;
    const ms = Math.max(0, Date.parse(result.finishedAt) - Date.parse(result.startedAt)) || 0;
    shape.meanMs = shape.results === 0 ? ms : shape.meanMs + WEIGHT * (ms - shape.meanMs);
    shape.results++;
    shape.earlier = false;
    if (shape.out > 0) shape.out--;
    this.wake();
  }

  /**
   * `phase`'s tasks took `meanMs` on average in `count` earlier attempts (a resumed run's
   * ledger): with enough of them, its batches are sized by that from its first task.
   */
  expect(phase: string, meanMs: number, count: number): void {
    const shape = this.shapeOf(phase);
    if (shape.results > 0 || count < PROBE_RESULTS) return;
    shape.results = count;
    shape.meanMs = meanMs;
    shape.earlier = true;
  }

  /** Publishes what is gathered now (before closing, say). */
  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const tasks = this.pending;
    this.pending = [];
    await this.options.publish(tasks);
  }

  /** Wakes whoever waits on a probe (the transport stops or failed). */
  wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** The batch size for `phase` now. */
  sizeOf(phase: string, shape = this.shapeOf(phase)): number {
    if (shape.results < PROBE_RESULTS) return 1;
    const size = Math.max(
      1,
      Math.min(this.maxSize, Math.floor(BATCH_WORK_MS / Math.max(shape.meanMs, 0.5))),
    );
    if (shape.said === 0 || size > 1 !== shape.said > 1) {
      const took = shape.earlier
        ? `took ${formatMs(shape.meanMs)} on average in earlier sessions of the run`
        : `take ${formatMs(shape.meanMs)} on average`;
      this.options.log.info(
        { phase },
        `tasks of phase ${phase} ${took}: publishing them ${size > 1 ? size : 'one'} to a message`,
      );
    }
    shape.said = size;
    return size;
  }

  private shapeOf(phase: string): PhaseShape {
    let shape = this.phases.get(phase);
    if (!shape) {
      shape = {
        results: 0,
        meanMs: 0,
        out: 0,
        since: Date.now(),
        long: false,
        said: 0,
        earlier: false,
      };
      this.phases.set(phase, shape);
    }
    return shape;
  }

  /**
   * While a phase's tasks are not known, waits with PROBE_TASKS of them out until enough
   * results come, or until PROBE_WAIT_MS have passed with none of them left in the task queue
   * (workers have them: its tasks are long, and the rest go one to a message, at once). While
   * some still wait in the queue (no worker is free, or none started yet) it waits on.
   */
  private async probing(shape: PhaseShape): Promise<void> {
    while (
      this.maxSize > 1 &&
      !shape.long &&
      shape.results < PROBE_RESULTS &&
      shape.out >= PROBE_TASKS
    ) {
      const left = PROBE_WAIT_MS - (Date.now() - shape.since);
      if (left <= 0) {
        const waiting = await this.options.waiting?.().catch(() => undefined);
        if (waiting !== undefined && waiting > 0) shape.since = Date.now();
        else shape.long = true;
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (this.failure) throw this.failure;
    }
  }
}

function formatMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}
