import { SECOND } from '../../shared/duration.js';
import { IdMap } from '../../shared/idMap.js';

/** What a phase's time left is estimated from. */
export interface ForecastInput {
  /** Expected work left, in ms: tasks not ended, less what their running attempts have done. */
  readonly leftMs: number;
  /** The longest single task left, in ms (what a running one still needs, or a waiting one). */
  readonly longestMs: number;
  /** Attempts running now. */
  readonly running: number;
  /** Time the phase's attempts have run so far, in ms, all slots together. */
  readonly busyMs: number;
  /** Time since the phase's first attempt started, in ms. */
  readonly wallMs: number;
}

/**
 * A phase's time left from the durations its tasks took before: the work left spread over the
 * slots it runs on, and never less than its longest task left (a phase lasts as long as its
 * slowest task). The slots are what the phase has used: the attempts running now, or how much
 * work it got done per unit of time so far, whichever is more (tasks under a second are not seen
 * running on a broker). This is the lower bound `max(longest, work / slots)`: with the tasks
 * published longest first, the phase ends within 4/3 of the best order's time when the durations
 * hold (Graham), so the ETA errs short by at most that.
 */
export function forecastMs(input: ForecastInput): number {
  const pace = input.wallMs >= SECOND ? input.busyMs / input.wallMs : 0;
  const slots = Math.max(1, input.running, pace);
  return Math.round(Math.max(input.leftMs / slots, input.longestMs, 0));
}

/** The middle of `values` (the expected duration of a task with no history), 0 for none. */
export function medianOf(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/**
 * The running phase's forecast, kept as its tasks go out, start and end: the tasker's progress
 * line. Holds each task's expected duration by task id (an IdMap: a million tasks in ~16 MB).
 */
export class PhaseForecast {
  private readonly expected = new IdMap(1);
  private leftMs = 0;
  private busyMs = 0;
  private firstAt: number | undefined;
  private readonly running = new Map<string, { readonly at: number; readonly ms: number }>();

  /** `unknownMs`: what a task with no history is expected to take (the median of the known). */
  constructor(private readonly unknownMs: number) {}

  /** The phase took the task; it is expected to take `ms` (undefined: no history). */
  taken(id: string, ms: number | undefined): void {
    const expected = Math.round(ms ?? this.unknownMs);
    // Stored plus one: 0 is "not a task of this forecast".
    this.expected.set(this.expected.upsert(id), 0, expected + 1);
    this.leftMs += expected;
  }

  /** An attempt of the task started at `at` (ms since the epoch). */
  started(id: string, at: number): void {
    const ms = this.expected.value(id, 0) - 1;
    if (ms < 0) return;
    this.firstAt = Math.min(this.firstAt ?? at, at);
    this.running.set(id, { at, ms });
  }

  /** An attempt of the task ran from `startedAt` to `finishedAt`; `final`: it will not run again. */
  ended(id: string, startedAt: number, finishedAt: number, final: boolean): void {
    const ms = this.expected.value(id, 0) - 1;
    if (ms < 0) return;
    this.running.delete(id);
    if (Number.isFinite(startedAt) && Number.isFinite(finishedAt) && finishedAt >= startedAt) {
      this.firstAt = Math.min(this.firstAt ?? startedAt, startedAt);
      this.busyMs += finishedAt - startedAt;
    }
    if (final) {
      this.leftMs -= ms;
      this.expected.set(this.expected.upsert(id), 0, 0);
    }
  }

  /** Time left, in ms. */
  etaMs(now = Date.now()): number {
    let done = 0;
    let longest = 0;
    let busy = this.busyMs;
    for (const { at, ms } of this.running.values()) {
      const ran = Math.max(0, now - at);
      done += Math.min(ran, ms);
      busy += ran;
      longest = Math.max(longest, ms - ran);
    }
    return forecastMs({
      leftMs: Math.max(0, this.leftMs - done),
      longestMs: longest,
      running: this.running.size,
      busyMs: busy,
      wallMs: this.firstAt === undefined ? 0 : now - this.firstAt,
    });
  }
}
