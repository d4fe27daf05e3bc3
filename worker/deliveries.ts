import { hostname } from 'node:os';
import type { Channel, ConsumeMessage, Message } from 'amqplib';
import { type SlotOutcome, SlotPool, type SlotPoolOptions } from '../exec/index.js';
import { formatDuration } from '../shared/duration.js';
import { describeSystemError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { PROTOCOL_VERSION, type TaskMessage, type TaskResult } from '../shared/protocol.js';
import { checkSignature } from '../shared/signing.js';
import { NAMES } from '../shared/topology.js';
import { decodeTasks } from '../shared/wire.js';
import { type Delivery, type Job, newDelivery, safely, settleDelivery } from './delivery.js';
import type { InflightMarkers } from './inflight.js';
import { Leases } from './leases.js';
import type { WorkerMetrics } from './metrics.js';
import type { ResultPublisher } from './publisher.js';
import type { Recent } from './recent.js';
import type { RunSight } from './runSight.js';

/** What the worker's deliveries need from the rest of the worker. */
export interface DeliveriesOptions {
  readonly slots: SlotPoolOptions;
  /** The task queue, for messages. */
  readonly queue: string;
  /** Tasks must carry this key's signature, when set. */
  readonly signingKey: string | undefined;
  /** The worker's name, in its leases. */
  readonly worker: string;
  /** Between lease renewals, in ms. */
  readonly leaseIntervalMs: number;
  readonly log: Logger;
  readonly publisher: ResultPublisher;
  readonly markers: InflightMarkers;
  readonly recent: Recent;
  /** Which runs the worker can see in its state dir (`slots.stateDir`). */
  readonly sight: RunSight;
  /**
   * Take no deliveries for `ms` (a delivery of a run the worker cannot see was given back);
   * resolves once none comes any more.
   */
  readonly backOff?: (ms: number) => Promise<void>;
  /** Whether deliveries of `channel` are still acknowledged on it (it is the consumer's). */
  readonly isCurrent: (channel: Channel) => boolean;
  /** A delivery came or a task ended: the worker is not idle. */
  readonly active: () => void;
  /** The worker's metrics, once it serves them. */
  readonly metrics: () => WorkerMetrics | undefined;
  /** A delivery settled, this long after it came. */
  readonly settled?: (tookMs: number) => void;
  /** A delivery came again (its worker died or lost it): it may be what killed that worker. */
  readonly redelivered?: () => void;
  /** A delivery is settled: acknowledged, handed back or refused. */
  readonly released?: (channel: Channel, message: Message) => void;
  /** A task ended (its slot is free). */
  readonly taskEnded?: () => void;
}

/** A task still running after this long tells its tasker it started (status shows it running). */
const STARTED_NOTICE_AFTER = 1000;

function firstLine(command: string): string {
  const line = command.split('\n', 1)[0] ?? '';
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

/**
 * A worker's deliveries, from the consumer to the acknowledgement: refuses what it cannot read
 * or trust (dead-lettered), drops what is done or cancelled, runs each task of the rest on the
 * worker's slots (a batch's tasks spread over them), publishes a delivery's results together
 * with a confirm once all its tasks ended, and only then acknowledges it. A delivery none of
 * whose tasks could start for a while goes back to the queue (`giveBack`), for an idle worker.
 */
export class Deliveries {
  private readonly pool: SlotPool<Job>;
  private readonly leases: Leases<Job>;
  /** Deliveries not settled yet, in the order they came. */
  private readonly open = new Set<Delivery>();

  constructor(private readonly options: DeliveriesOptions) {
    this.leases = new Leases<Job>({
      worker: options.worker,
      intervalMs: options.leaseIntervalMs,
      send: (replyTo, lease) => options.publisher.lease(replyTo, lease),
      // A held delivery of a channel that is gone is back in the queue; a running one is ours.
      listed: (job, state) => state === 'running' || options.isCurrent(job.delivery.channel),
    });
    this.pool = new SlotPool<Job>(options.slots, {
      admit: (job) => this.admit(job),
      starting: (job, slot) => this.starting(job, slot),
      ended: (job, outcome, slot) => this.ended(job, outcome, slot.worker),
    });
  }

  /** Slots running a task now (the metrics' busy slots). */
  get running(): number {
    return this.pool.running;
  }

  /** When the longest-running task started (ms since the epoch), if any runs. */
  get oldestStart(): number | undefined {
    let oldest: number | undefined;
    for (const job of this.pool.runningJobs())
      if (job.startedAt !== undefined && (oldest === undefined || job.startedAt < oldest))
        oldest = job.startedAt;
    return oldest;
  }

  /** Takes a delivery from the consumer: refuses, drops, or queues its tasks for the slots. */
  async take(channel: Channel, message: ConsumeMessage): Promise<void> {
    const { log, queue, signingKey, recent, publisher } = this.options;
    this.options.active();
    const refuse = (reason: string) => {
      log.warn(
        `refused a message on \`${queue}\` (dead-lettered to \`${NAMES.deadQueue}\`): ${reason}`,
      );
      safely(() => channel.reject(message, false));
      this.options.released?.(channel, message);
    };
    if (signingKey) {
      const bad = checkSignature(signingKey, message);
      if (bad) {
        refuse(`task ${String(message.properties.messageId ?? '(no id)')} refused: ${bad}`);
        return;
      }
    }
    const decoded = decodeTasks(message);
    if (!decoded.ok) {
      refuse(decoded.reason);
      return;
    }
    const { tasks, replyTo, stamp } = decoded.value;
    if (message.fields.redelivered) this.options.redelivered?.();
    const alive = await publisher.isAlive(replyTo);
    const run = (tasks[0] as TaskMessage).run;
    // A stamped task of a live run this worker cannot see: not here to run (docs/running.md).
    if (alive && stamp && !recent.cancelled(run) && !this.options.sight.sees(run, stamp)) {
      await this.giveBackUnseen(channel, message, tasks, replyTo);
      return;
    }
    this.options.sight.hit();
    if (stamp && this.options.sight.seen(run))
      log.info({ run }, `run ${run} is in this worker's state dir now: taking its tasks`);
    // Done already, or its run is over: not run.
    const runnable = tasks.filter(
      (task) => alive && !recent.resultIn(task) && !recent.cancelled(task.run),
    );
    if (runnable.length < tasks.length) {
      const first = tasks[0] as TaskMessage;
      log.info(
        { run: first.run, task: first.task },
        tasks.length === 1
          ? `dropped task ${first.task}: its run is finished or cancelled, or its result is in`
          : `dropped ${tasks.length - runnable.length} of a batch of ${tasks.length} tasks: their run is finished or cancelled, or their results are in`,
      );
    }
    if (runnable.length === 0) {
      safely(() => channel.ack(message));
      this.options.released?.(channel, message);
      return;
    }
    const delivery = newDelivery(message, channel, replyTo, runnable.length);
    this.open.add(delivery);
    for (const task of runnable) {
      const job: Job = { task: { ...task, replyTo }, delivery };
      this.leases.hold(job);
      this.pool.add(job);
    }
  }

  /**
   * Gives back, unrun, a delivery of a run this worker cannot see in its state dir: says so
   * (once per run), tells the run's tasker, and takes no deliveries for a while (longer each
   * time while it meets only such runs) so that a worker that shares the run's working
   * directory gets it. The consumer is cancelled before the nack, so the delivery cannot come
   * straight back here. (Before RabbitMQ 4.3 the nack counts toward the task's delivery limit:
   * the tasker publishes again, as the same attempt, a task dead-lettered by such give-backs.)
   */
  private async giveBackUnseen(
    channel: Channel,
    message: Message,
    tasks: readonly TaskMessage[],
    replyTo: string,
  ): Promise<void> {
    const { log, sight, publisher, worker, slots } = this.options;
    const run = (tasks[0] as TaskMessage).run;
    if (sight.firstMiss(run))
      log.warn(
        { run },
        `run ${run} is not in this worker's state dir ${slots.stateDir} (${sight.found(run)} in runs/${run}/stamp): this worker, in ${slots.workdir}, does not share the run's working directory, so it gives the run's tasks back for a worker that does. Start workers in the run's working directory (--workdir, or on the same volume)`,
      );
    await this.options.backOff?.(sight.missed());
    safely(() => channel.nack(message, false, true));
    this.options.released?.(channel, message);
    publisher.givenBack(replyTo, {
      v: PROTOCOL_VERSION,
      run,
      worker,
      host: hostname(),
      workdir: slots.workdir,
      stateDir: slots.stateDir,
      at: new Date().toISOString(),
      tasks: tasks.map((task) => [task.task, task.attempt] as [string, number]),
    });
  }

  /** The deliveries none of whose tasks started in `waitedMs`, while no slot is free. */
  private waitingLong(waitedMs: number): Delivery[] {
    if (this.pool.running < this.pool.size) return [];
    const now = Date.now();
    return [...this.open].filter(
      (delivery) =>
        !delivery.started &&
        now - delivery.at >= waitedMs &&
        this.options.isCurrent(delivery.channel),
    );
  }

  /** Whether a delivery has waited `waitedMs` for a slot, none being free. */
  stuck(waitedMs: number): boolean {
    return this.waitingLong(waitedMs).length > 0;
  }

  /**
   * Hands back to the queue the deliveries none of whose tasks started in `waitedMs`, while no
   * slot is free: another worker may be idle (the consumer takes no more while no slot is free,
   * so they do not come straight back). Returns how many went back. (A nack counts toward a message's delivery limit on
   * RabbitMQ before 4.3, so this is done only when a delivery would wait behind long tasks.)
   */
  giveBack(waitedMs: number): number {
    const back = this.waitingLong(waitedMs);
    if (back.length === 0) return 0;
    const jobs = this.pool.dropWaiting((job) => back.includes(job.delivery));
    for (const delivery of back) delivery.handBack = true;
    for (const job of jobs) this.done(job);
    this.options.log.info(
      `handed ${back.length} waiting deliver${back.length === 1 ? 'y' : 'ies'} back to the queue for an idle worker: every slot here runs a long task`,
    );
    return back.length;
  }

  /**
   * The broker took back the deliveries of a channel because one outlived `consumer_timeout`
   * (RabbitMQ closes the channel up to 4.2 and cancels the consumer from 4.3). The tasks are
   * stopped (another worker will get them) and their run hears why.
   */
  leaseLost(channel: Channel, timeoutMs: number | undefined, ownTimeoutMs?: number): void {
    const limit = timeoutMs === undefined ? '' : ` (${formatDuration(timeoutMs)})`;
    // The broker says the timeout it used: Warren's own x-consumer-timeout (WARREN_CONSUMER_TIMEOUT)
    // is what to raise when it is that; otherwise the broker's consumer_timeout, which a task
    // queue created without the argument (by an older Warren, or before an upgrade) still obeys.
    const ownTimeout = ownTimeoutMs !== undefined && timeoutMs === ownTimeoutMs;
    const what = ownTimeout ? "Warren's consumer timeout" : 'consumer_timeout';
    const raise = ownTimeout
      ? "Raise WARREN_CONSUMER_TIMEOUT (the worker's --consumer-timeout, and the tasker's for the task queue) above the longest task"
      : `Raise consumer_timeout (rabbitmq.conf \`consumer_timeout = <ms>\`, or the RabbitmqCluster's additionalConfig) above the longest task${ownTimeoutMs === undefined ? '' : ', or let a tasker create the task queue anew with its x-consumer-timeout (docs/brokers.md)'}`;
    const now = Date.now();
    const age = (running: Job) => now - (running.startedAt ?? now);
    const mine = this.pool.runningJobs().filter((running) => running.delivery.channel === channel);
    // Only the tasks that outlived the timeout (with RabbitMQ 4.3+, which does not say the
    // timeout, the oldest): the others keep running and publish their results, though their
    // deliveries went back to the queue too (a redelivery of a result already in is dropped).
    let over = mine.filter((running) => timeoutMs !== undefined && age(running) >= timeoutMs);
    if (over.length === 0 && mine.length > 0)
      over = [mine.reduce((a, b) => (age(b) > age(a) ? b : a))];
    for (const running of mine) {
      if (over.includes(running)) continue;
      this.options.log.info(
        { run: running.task.run, task: running.task.task },
        `task ${running.task.task} keeps running: the broker took back this channel's deliveries for another task's sake; its result is published all the same`,
      );
    }
    for (const running of over) {
      running.lost = ownTimeout
        ? `the broker took the task back: it ran longer than Warren's consumer timeout${limit}; raise WARREN_CONSUMER_TIMEOUT above the longest task`
        : `the broker took the task back: it ran longer than consumer_timeout${limit}; raise consumer_timeout above the longest task`;
      running.delivery.lost = true;
      this.options.log.error(
        { run: running.task.run, task: running.task.task },
        `task ${running.task.task} ran longer than ${ownTimeout ? what : `the broker's ${what}`}${limit}: the broker took it back, so it is stopped here. ${raise}`,
      );
      void this.pool.stop(running);
    }
  }

  /** A run was cancelled: its running tasks stop, its deliveries are dropped from now on. */
  cancelRun(run: string): void {
    this.options.recent.rememberCancel(run);
    for (const running of this.pool.runningJobs()) {
      if (running.task.run === run) {
        this.options.log.info(
          { run, task: running.task.task },
          `run ${run} was cancelled: stopping its task`,
        );
        void this.pool.stop(running);
      }
    }
  }

  /** Gives no more deliveries a slot (a shutdown begins): they go back when the channel closes. */
  hold(): void {
    this.pool.hold();
  }

  /**
   * Takes no more deliveries, lets running tasks finish within `graceMs`, stops the rest (the
   * broker gives them to another worker), publishes the results of what ended and hands back
   * what did not (a batch that ran only in part runs again elsewhere, whole), and ends the
   * slots' shells.
   */
  async stop(graceMs: number): Promise<void> {
    const { log } = this.options;
    this.hold();
    if (this.pool.running > 0) {
      log.info(`waiting up to ${formatDuration(graceMs)} for ${this.pool.running} running task(s)`);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.pool.idle(),
        new Promise((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
      if (this.pool.running > 0) {
        log.warn(
          `stopping ${this.pool.running} task(s) still running; the broker will give them to another worker`,
        );
        await this.pool.stopAll();
        await this.pool.idle();
      }
    }
    // Tasks that never got a slot: their deliveries go back to the queue.
    for (const job of this.pool.dropWaiting()) {
      job.delivery.handBack = true;
      this.done(job);
    }
    // Finished tasks may still be publishing their results and acknowledging: let them.
    await this.pool.settled();
    this.leases.close();
    await this.pool.close();
  }

  /** A waiting task gets a slot: unless its delivery is stale, or it is done or cancelled meanwhile. */
  private admit(job: Job): boolean {
    // A delivery of a channel that is gone is back in the queue already.
    if (!this.options.isCurrent(job.delivery.channel)) {
      this.done(job);
      return false;
    }
    // It waited: its result may have come in (from a slot of ours) or its run been cancelled.
    const { task } = job;
    const { recent } = this.options;
    if (recent.resultIn(task) || recent.cancelled(task.run)) {
      this.options.log.info(
        { run: task.run, task: task.task },
        `dropped task ${task.task}: its run is cancelled, or its result is in`,
      );
      this.done(job);
      return false;
    }
    return true;
  }

  private starting(job: Job, slot: { readonly worker: string; readonly host: string }) {
    const { task } = job;
    const startedAt = new Date();
    job.startedAt = startedAt.getTime();
    job.delivery.started = true;
    this.leases.run(job);
    try {
      job.marker = this.options.markers.write({
        ...task,
        worker: slot.worker,
        host: slot.host,
        startedAt: startedAt.toISOString(),
      });
    } catch (error) {
      // The marker only helps report a container killed with its task: run the task anyway.
      this.options.log.warn(
        `could not write the in-flight marker of task ${task.task}: ${describeSystemError(error)}`,
      );
    }
    // Short tasks say nothing until their result (the result has the start time): a notice
    // per task would cost the broker a message each. Longer ones say they started.
    job.notice = setTimeout(
      () => this.options.publisher.started(task, slot.worker, slot.host, startedAt),
      STARTED_NOTICE_AFTER,
    );
    this.options.log
      .child({ run: task.run, task: task.task, slot: slot.worker })
      .debug(`running attempt ${task.attempt}: ${task.command}`);
  }

  /** A task ended: its result joins its delivery's; resolves once the delivery is settled. */
  private ended(job: Job, outcome: SlotOutcome, worker: string): Promise<void> {
    const { task, delivery } = job;
    clearTimeout(job.notice);
    this.options.markers.remove(job.marker);
    this.options.active();
    const result = outcome.result ? this.resultOf(job, outcome.result, worker) : undefined;
    if (result) delivery.results.push(result);
    else if (!outcome.result) {
      this.options.log.error(
        { run: task.run, task: task.task, err: outcome.error },
        `task ${task.task} could not run: ${describeSystemError(outcome.error)}`,
      );
      delivery.handBack = true;
    }
    this.done(job);
    this.options.taskEnded?.();
    return delivery.settled;
  }

  /** The result to publish of an ended task, or undefined when it is not to be published. */
  private resultOf(job: Job, given: TaskResult, worker: string): TaskResult | undefined {
    const { task, delivery } = job;
    let result = given;
    const log = this.options.log.child({ run: task.run, task: task.task, slot: worker });
    if (job.lost) {
      result = { ...result, state: 'failed', failure: 'lost', reason: job.lost, exitCode: null };
    } else if (result.state === 'cancelled' && !this.options.recent.cancelled(task.run)) {
      // Stopped by our shutdown: leave it to another worker.
      delivery.handBack = true;
      return undefined;
    }
    const elapsed = Date.parse(result.finishedAt) - Date.parse(result.startedAt);
    if (result.state === 'succeeded')
      log.info(`succeeded in ${formatDuration(elapsed)}: ${firstLine(task.command)}`);
    else log.warn(`${result.reason} after ${formatDuration(elapsed)}: ${firstLine(task.command)}`);
    this.options.metrics()?.ended(result);
    return result;
  }

  /** One task of a delivery is through (ended, dropped or handed back); the last settles it. */
  private done(job: Job): void {
    this.leases.release(job);
    const delivery = job.delivery;
    if (--delivery.open > 0) return;
    this.open.delete(delivery);
    void settleDelivery(delivery, this.options).finally(() => {
      delivery.settle();
      this.options.settled?.(Date.now() - delivery.at);
    });
  }
}
