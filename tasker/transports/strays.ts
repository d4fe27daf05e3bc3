import { formatDuration, MINUTE, SECOND } from '../../shared/duration.js';
import type { Logger } from '../../shared/logger.js';
import type { TaskMessage } from '../../shared/protocol.js';
import type { GivenBack } from '../../shared/wire.js';

/** Tasks given back this long, with no sign of a worker that shares the run: said. */
const NO_SHARER_AFTER = 20 * SECOND;
/** ... and said again this often while it lasts. */
const NO_SHARER_REPEAT = 5 * MINUTE;
/** Attempts given back that are remembered (for their dead letters); the oldest go first. */
const REMEMBERED = 100_000;

export interface StraysOptions {
  /** The run's working directory, as the tasker has it (undefined: not known here). */
  readonly workdir: string | undefined;
  /** The task queue's `x-delivery-limit`. */
  readonly deliveryLimit: number;
  readonly log: Logger;
}

/** Of one attempt: its deliveries given back by stray workers, and those that ended otherwise. */
interface Tally {
  back: number;
  other: number;
}

/**
 * What a run's tasker knows of stray workers: workers that took tasks of the run but cannot see
 * it in their state dir (they do not share its working directory), and gave them back unrun.
 * Says each such worker once; says when no worker that shares the run seems to be there
 * (tasks given back for 20 s with no result, lease or started notice meanwhile), and again
 * every 5 minutes while it lasts; and tells a task dead-lettered because strays gave it back
 * (each give-back counts toward the delivery limit before RabbitMQ 4.3) from a poison task.
 */
export class Strays {
  /** Stray workers said, by name. */
  private readonly workers = new Map<string, string>();
  private readonly tallies = new Map<string, Tally>();
  /** When tasks were first given back since the last sign of a worker that shares the run. */
  private since: number | undefined;
  private warnedAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: StraysOptions) {}

  /** A worker gave these attempts back unrun. */
  givenBack(notice: GivenBack): void {
    const { log, workdir } = this.options;
    if (!this.workers.has(notice.worker)) {
      this.workers.set(notice.worker, notice.workdir || '(unknown)');
      log.warn(
        { worker: notice.worker },
        `worker ${notice.worker}${notice.host ? ` on ${notice.host}` : ''} cannot see run ${notice.run} in its state dir ${notice.stateDir || '(unknown)'}: it runs tasks in ${notice.workdir || '(unknown)'}, not in this run's working directory${workdir ? ` ${workdir}` : ''}, so it gives the run's tasks back for a worker that shares it`,
      );
    }
    for (const [task, attempt] of notice.tasks) {
      const key = `${task}.${attempt}`;
      const tally = this.tallies.get(key) ?? { back: 0, other: 0 };
      tally.back++;
      this.tallies.delete(key);
      this.tallies.set(key, tally);
    }
    while (this.tallies.size > REMEMBERED) {
      const oldest = this.tallies.keys().next().value;
      if (oldest === undefined) break;
      this.tallies.delete(oldest);
    }
    if (this.since === undefined) {
      this.since = Date.now();
      this.schedule(NO_SHARER_AFTER);
    }
  }

  /** A result, a started notice or a lease came: a worker that shares the run is there. */
  sharing(): void {
    if (this.since === undefined) return;
    if (this.warnedAt !== undefined)
      this.options.log.info(
        "a worker that shares this run's working directory is taking its tasks now",
      );
    this.since = undefined;
    this.warnedAt = undefined;
    clearTimeout(this.timer);
  }

  /** An attempt's result is in: nothing more to remember of it. */
  ended(task: string, attempt: number): void {
    if (this.tallies.size > 0) this.tallies.delete(`${task}.${attempt}`);
  }

  /**
   * The broker dead-lettered `task` for its delivery limit. Publish it again, as the same
   * attempt, when strays gave it back, unless the deliveries that were not given back (worker
   * deaths, lost leases) add up, over its messages, to more than the limit: then it is a task
   * that kills its workers, lost as ever.
   */
  deadLettered(task: TaskMessage): boolean {
    const key = `${task.task}.${task.attempt}`;
    const tally = this.tallies.get(key);
    if (!tally || tally.back === 0) return false;
    const limit = this.options.deliveryLimit;
    tally.other += Math.max(0, limit + 1 - tally.back);
    const back = tally.back;
    tally.back = 0;
    if (tally.other > limit) return false;
    this.options.log.info(
      { task: task.task, attempt: task.attempt },
      `the broker gave up on task ${task.task} after workers that cannot see the run gave it back ${back} time(s): publishing it again, as the same attempt`,
    );
    return true;
  }

  /** These tasks go out again, each in a message of its own: their give-backs start over. */
  republished(tasks: readonly TaskMessage[]): void {
    for (const task of tasks) {
      const tally = this.tallies.get(`${task.task}.${task.attempt}`);
      if (tally) tally.back = 0;
    }
  }

  close(): void {
    clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.check(), ms);
    this.timer.unref();
  }

  private check(): void {
    if (this.since === undefined) return;
    const { log, workdir } = this.options;
    const strays = [...this.workers].map(([worker, dir]) => `${worker} in ${dir}`).join(', ');
    log.warn(
      `no worker shares this run's working directory${workdir ? ` ${workdir}` : ''}: for ${formatDuration(Date.now() - this.since)} every worker that took its tasks gave them back (${strays}). Start a worker there (worker --workdir ${workdir ?? 'DIR'}, or on the same volume); waiting for one`,
    );
    this.warnedAt = Date.now();
    this.schedule(NO_SHARER_REPEAT);
  }
}
