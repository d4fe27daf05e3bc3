import { forecastMs, medianOf } from '../history/index.js';
import type { TaskState } from './status.js';

/**
 * A phase's work left as `tasker status` sees it, task by task, from the durations its commands
 * took in earlier runs (tasker/history): what the queued ones will take, what the running ones
 * still need, and how much the phase got done per unit of time so far. A task with no history
 * counts as the median of those with one.
 */
export class WorkAhead {
  private leftMs = 0;
  private longestMs = 0;
  private busyMs = 0;
  private running = 0;
  private firstStart = Number.POSITIVE_INFINITY;
  private readonly known: number[] = [];
  /** Tasks left with no history: how long each has run (0 for a queued one). */
  private readonly unknownRan: number[] = [];
  private unknownQueued = 0;

  constructor(private readonly now: number) {}

  /** One task of the phase; `expected` looks its duration up (only for a task not ended). */
  add(
    state: TaskState,
    startedAt: string | null,
    finishedAt: string | null,
    expected: () => number | undefined,
  ): void {
    const start = startedAt ? Date.parse(startedAt) : Number.NaN;
    if (Number.isFinite(start)) this.firstStart = Math.min(this.firstStart, start);
    if (state === 'succeeded' || state === 'failed' || state === 'cancelled') {
      const end = finishedAt ? Date.parse(finishedAt) : Number.NaN;
      if (Number.isFinite(start) && Number.isFinite(end) && end >= start)
        this.busyMs += end - start;
      return;
    }
    const ms = expected();
    const ran = state === 'running' && Number.isFinite(start) ? Math.max(0, this.now - start) : 0;
    if (state === 'running') {
      this.running++;
      this.busyMs += ran;
    }
    if (ms === undefined) {
      if (state === 'running') this.unknownRan.push(ran);
      else this.unknownQueued++;
      return;
    }
    this.known.push(ms);
    this.leftMs += Math.max(0, ms - ran);
    this.longestMs = Math.max(this.longestMs, ms - ran);
  }

  /** Time left in ms, or undefined when no task left has a history (or none is left). */
  etaMs(): number | undefined {
    if (this.known.length === 0) return undefined;
    const median = medianOf(this.known);
    let left = this.leftMs + this.unknownQueued * median;
    let longest = this.longestMs;
    if (this.unknownQueued > 0) longest = Math.max(longest, median);
    for (const ran of this.unknownRan) {
      left += Math.max(0, median - ran);
      longest = Math.max(longest, median - ran);
    }
    return forecastMs({
      leftMs: left,
      longestMs: longest,
      running: this.running,
      busyMs: this.busyMs,
      wallMs: Number.isFinite(this.firstStart) ? this.now - this.firstStart : 0,
    });
  }
}
