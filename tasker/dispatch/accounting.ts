import { formatDuration, MINUTE, SECOND } from '../../shared/duration.js';
import type { Logger } from '../../shared/logger.js';
import { TaskState, type TaskTable } from '../ledger/index.js';
import type { QueueView, Transport } from '../transports/index.js';

/** A clock in tenths of a second, 1 at its start (0 in the table means "never"). */
const EPOCH = Date.now();
const now = () => Math.floor((Date.now() - EPOCH) / 100) + 1;
/** Marks a `seen` time that came from a worker's lease (held or running), not from the queue. */
const LEASED = 0x8000_0000;

/** The no-worker warning comes again this often while it lasts. */
const NO_WORKER_REPEAT = 5 * MINUTE;
/** ... and first after this long with nobody consuming (or half the lost bound, if shorter). */
const NO_WORKER_AFTER = 30 * SECOND;

export interface AccountingOptions {
  /**
   * A task whose attempt is in none of the states (on the broker, held or running on a worker,
   * finished) for this long is lost, in ms; 0: lost tasks are only said (after a minute), never
   * published again.
   */
  readonly lostAfterMs: number;
  /**
   * The run's size classes (`--classes`), by the index the task table keeps: tasks of a class
   * above the first wait in that class's queue, which is looked at too. @defaultValue none
   */
  readonly classes?: readonly string[];
}

/** What the accounting tells its phase. */
export interface AccountingEvents {
  /**
   * These rows' attempts are nowhere: publish them again (or fail them, past the limit); with
   * `again` false (`--lost-after 0`) only say so.
   */
  readonly vanished: (slots: readonly number[], why: 'gone' | 'deleted', again: boolean) => void;
  /** What the broker said, for status and the progress line (undefined: nothing to say). */
  readonly view: (view: QueueView, note: string | undefined) => void;
}

/**
 * Knows, for every task a phase waits for, where its attempt is: waiting on the broker (the
 * task queue's ready messages, the youngest first, since a queue hands out the oldest first),
 * held or running on a live worker (its lease), or finished. A task that is in none of these
 * for longer than the bound vanished: its queue was purged or deleted, or a message was lost.
 * Checks every few seconds while the phase waits; nothing per task is allocated.
 */
export class Accounting {
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  private order = 0;
  /** Per queue looked at (the task queue, a size class's), since when nobody consumes it. */
  private readonly idle = new Map<string, { since: number; warnedAt: number | undefined }>();

  constructor(
    private readonly table: TaskTable,
    private readonly transport: Transport & { view: (sizeClass?: string) => Promise<QueueView> },
    private readonly options: AccountingOptions,
    private readonly log: Logger,
    private readonly events: AccountingEvents,
  ) {}

  /** A transport that can tell what its queue holds can be accounted for. */
  static supports(
    transport: Transport,
  ): transport is Transport & { view: (sizeClass?: string) => Promise<QueueView> } {
    return typeof transport.view === 'function';
  }

  start(): void {
    if (this.timer) return;
    const every = Math.min(5 * SECOND, Math.max(500, this.options.lostAfterMs / 8 || 5 * SECOND));
    this.timer = setInterval(() => void this.check(), every);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The broker confirmed it holds the row's attempt. */
  queued(slot: number): void {
    this.table.markQueued(slot, ++this.order);
    this.table.markSeen(slot, now());
  }

  /** A worker holds or runs the row's attempt (a lease, or its started notice). */
  leased(slot: number): void {
    this.table.markSeen(slot, now() | LEASED);
  }

  /** The row awaits a new attempt that is not published yet: nothing to account for. */
  reset(slot: number): void {
    this.table.markQueued(slot, 0);
    this.table.markSeen(slot, 0);
  }

  /** One look at the broker and the phase's tasks. */
  async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      if (this.table.count(TaskState.IN_FLIGHT) === 0) return;
      const view = await this.transport.view().catch(() => undefined);
      if (!view) return;
      // Slots move when the table grows: found after the wait, used before the next one.
      const waiting = this.table.slotsIn(TaskState.IN_FLIGHT);
      const byClass = this.byClass(waiting);
      const first = byClass.get(0) ?? [];
      let note = this.noWorker(view, first.length);
      const found: [QueueView, number[]][] = [[view, first]];
      for (const [index, slots] of byClass) {
        if (index === 0) continue;
        const name = this.options.classes?.[index];
        const classView = name ? await this.transport.view(name).catch(() => undefined) : undefined;
        if (!classView) continue;
        note ??= this.noWorker(classView, slots.length, name);
        found.push([classView, slots]);
      }
      this.events.view(view, note);
      const again = this.options.lostAfterMs > 0;
      for (const [queueView, slots] of found) {
        const lost = this.lost(slots, queueView);
        if (lost.length === 0) continue;
        // Only said: said again if they are still nowhere after another bound.
        if (!again) for (const slot of lost) this.table.markSeen(slot, now());
        this.events.vanished(lost, queueView.recreated ? 'deleted' : 'gone', again);
      }
    } finally {
      this.checking = false;
    }
  }

  /** The rows of `waiting` by the size class of their attempt (all in 0 with no classes). */
  private byClass(waiting: readonly number[]): Map<number, number[]> {
    const groups = new Map<number, number[]>();
    if (!this.options.classes?.length) return groups.set(0, [...waiting]);
    for (const slot of waiting) {
      const index = this.table.sizeClass(slot);
      const group = groups.get(index);
      if (group) group.push(slot);
      else groups.set(index, [slot]);
    }
    return groups;
  }

  /** The rows among `waiting` whose attempt is nowhere, for longer than the bound. */
  private lost(waiting: readonly number[], view: QueueView): number[] {
    const table = this.table;
    const t = now();
    // With --lost-after 0 tasks are only said to be lost, after the default bound.
    const bound = (this.options.lostAfterMs || MINUTE) / 100;
    // Nobody consumes: nothing can be on its way to a worker, so a shorter wait is enough.
    const limit = view.consumers === 0 ? Math.max(20, bound / 4) : bound;
    const unleased: number[] = [];
    for (const slot of waiting) {
      if (table.queuedOrder(slot) === 0) continue; // not confirmed yet: the publisher has it
      const seen = table.seen(slot);
      if ((seen & LEASED) !== 0 && t - (seen & ~LEASED) <= bound) continue; // held or running
      unleased.push(slot);
    }
    // Oldest first: what is published again goes out in the order it first went.
    unleased.sort((a, b) => table.queuedOrder(a) - table.queuedOrder(b));
    if (view.recreated) return unleased; // the queue was deleted with everything in it
    // The queue holds `ready` of them: the youngest, since the oldest are delivered first.
    const lost: number[] = [];
    const inQueue = unleased.length - view.ready;
    for (const [index, slot] of unleased.entries()) {
      if (index >= inQueue) table.markSeen(slot, t);
      else if (t - (table.seen(slot) & ~LEASED) > limit) lost.push(slot);
    }
    return lost;
  }

  /**
   * Says, now and then, that nobody consumes the task queue (or the queue of size class
   * `sizeClass`, which has tasks waiting); returns the note for status.
   */
  private noWorker(view: QueueView, waiting: number, sizeClass?: string): string | undefined {
    const t = Date.now();
    const idle = this.idle.get(view.queue);
    if (view.consumers > 0 || waiting === 0) {
      if (idle?.warnedAt !== undefined && view.consumers > 0)
        this.log.info(
          `${view.consumers} worker(s) consuming ${view.queue} now; ${waiting} task(s) to go`,
        );
      this.idle.delete(view.queue);
      return undefined;
    }
    const state = idle ?? { since: t, warnedAt: undefined };
    this.idle.set(view.queue, state);
    const after = Math.min(NO_WORKER_AFTER, this.options.lostAfterMs / 2 || NO_WORKER_AFTER);
    if (t - state.since < after) return undefined;
    const note =
      sizeClass === undefined
        ? `no worker is consuming ${view.queue}: start workers (worker, or kubectl scale deploy/warren-worker)`
        : `no worker of size class ${sizeClass} is consuming ${view.queue}: start one (worker --class ${sizeClass}, or kubectl scale deploy/warren-worker-${sizeClass})`;
    if (state.warnedAt === undefined || t - state.warnedAt >= NO_WORKER_REPEAT) {
      state.warnedAt = t;
      this.log.warn(`${note}; ${waiting} task(s) waiting for ${formatDuration(t - state.since)}`);
    }
    return note;
  }
}
