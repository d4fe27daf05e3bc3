import type { TaskResult } from '../../shared/protocol.js';
import type { PhaseKind } from '../jobs/index.js';
import type { QueueView } from '../transports/index.js';

/** A task that ended failed, for the summary. */
export interface FailedTask {
  readonly task: string;
  readonly phase: string;
  readonly command: string;
  readonly attempt: number;
  readonly reason: string;
  readonly errorTail: string;
}

/** How a phase went. */
export interface PhaseSummary {
  readonly name: string;
  readonly kind: PhaseKind;
  readonly total: number;
  readonly succeeded: number;
  readonly failed: number;
  /** Already succeeded in an earlier session of this run. */
  readonly skipped: number;
  /** True when the phase stopped before every task had a final outcome. */
  readonly interrupted: boolean;
  /** Up to `MAX_LISTED` failed tasks; `failed` has the count. */
  readonly failures: readonly FailedTask[];
  readonly elapsedMs: number;
}

/** Progress of the running phase, for a progress display. */
export interface PhaseProgress {
  readonly phase: string;
  readonly total: number;
  readonly done: number;
  readonly failed: number;
  readonly running: number;
  /** What the broker said of the task queue at the last look, where tasks wait on one. */
  readonly broker?: QueueView;
  /** What the phase waits for, when it is worth saying: `no worker is consuming warren.tasks`. */
  readonly note?: string;
  /**
   * Time left, in ms, from the durations its tasks took in earlier runs (tasker/history), when
   * some had one; absent otherwise (the progress line then goes by the pace so far).
   */
  readonly etaMs?: number;
}

/** Failed tasks listed in a summary; the rest are counted. */
const MAX_LISTED = 50;

/**
 * A phase's counts. The barrier opens when `settled` reaches `expected`: it counts distinct
 * tasks, each settled once, never queue lengths.
 */
export class PhaseTally {
  /** Tasks the phase took: from its phase file (skipped ones included) and spawned. */
  expected = 0;
  succeeded = 0;
  failed = 0;
  /** Already succeeded in an earlier session of this run. */
  skipped = 0;
  /** Left unfinished, to run again on resume: cancelled, or interrupted waiting for a retry. */
  left = 0;
  /** Attempts a worker reported started and that have not ended yet. */
  running = 0;
  /** Tasks handed to the transport (retries aside), and how many of those it reported held. */
  submitted = 0;
  queued = 0;
  readonly failures: FailedTask[] = [];
  private readonly startedAt = Date.now();

  /** Tasks with a final outcome, or left for a resume. */
  get settled(): number {
    return this.succeeded + this.failed + this.skipped + this.left;
  }

  /** Counts a task failed for good, listing it while the list is short. */
  fail(result: TaskResult, command: string, errorTail: string): void {
    this.failed++;
    if (this.failures.length >= MAX_LISTED) return;
    this.failures.push({
      task: result.task,
      phase: result.phase,
      command,
      attempt: result.attempt,
      reason: result.reason ?? 'failed',
      errorTail,
    });
  }

  progress(phase: string, total: number): PhaseProgress {
    return {
      phase,
      total,
      done: this.succeeded + this.skipped + this.failed,
      failed: this.failed,
      running: this.running,
    };
  }

  summary(
    phase: { readonly name: string; readonly kind: PhaseKind },
    total: number,
    interrupted: boolean,
  ): PhaseSummary {
    return {
      name: phase.name,
      kind: phase.kind,
      total,
      succeeded: this.succeeded,
      failed: this.failed,
      skipped: this.skipped,
      interrupted,
      failures: this.failures,
      elapsedMs: Date.now() - this.startedAt,
    };
  }
}
