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
  private noWorkerSince: number | undefined;
  private warnedAt: number | undefined;

  constructor(
    private readonly table: TaskTable,
    private readonly transport: Transport & { view: () => Promise<QueueView> },
    private readonly options: AccountingOptions,
    private readonly log: Logger,
    private readonly events: AccountingEvents,
  ) {}

  /** A transport that can tell what its queue holds can be accounted for. */
  static supports(
    transport: Transport,
  ): transport is Transport & { view: () => Promise<QueueView> } {
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
      this.events.view(view, this.noWorker(view, waiting.length));
      const lost = this.lost(waiting, view);
      if (lost.length === 0) return;
      const again = this.options.lostAfterMs > 0;
      // Only said: said again if they are still nowhere after another bound.
      if (!again) for (const slot of lost) this.table.markSeen(slot, now());
      this.events.vanished(lost, view.recreated ? 'deleted' : 'gone', again);
    } finally {
      this.checking = false;
    }
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

  /** Says, now and then, that nobody consumes the task queue; returns the note for status. */
  private noWorker(view: QueueView, waiting: number): string | undefined {
    const t = Date.now();
    if (view.consumers > 0) {
      if (this.warnedAt !== undefined)
        this.log.info(
          `${view.consumers} worker(s) consuming ${view.queue} now; ${waiting} task(s) to go`,
        );
      this.noWorkerSince = undefined;
      this.warnedAt = undefined;
      return undefined;
    }
    this.noWorkerSince ??= t;
    const after = Math.min(NO_WORKER_AFTER, this.options.lostAfterMs / 2 || NO_WORKER_AFTER);
    if (t - this.noWorkerSince < after) return undefined;
    const note = `no worker is consuming ${view.queue}: start workers (worker, or kubectl scale deploy/warren-worker)`;
    if (this.warnedAt === undefined || t - this.warnedAt >= NO_WORKER_REPEAT) {
      this.warnedAt = t;
      this.log.warn(
        `${note}; ${waiting} task(s) waiting for ${formatDuration(t - this.noWorkerSince)}`,
      );
    }
    return note;
  }
}
