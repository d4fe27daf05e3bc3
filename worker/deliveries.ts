import type { Channel, ConsumeMessage, Message } from 'amqplib';
import { type SlotOutcome, SlotPool, type SlotPoolOptions } from '../exec/index.js';
import { formatDuration } from '../shared/duration.js';
import { describeSystemError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { TaskMessage, TaskResult } from '../shared/protocol.js';
import { checkSignature } from '../shared/signing.js';
import { NAMES } from '../shared/topology.js';
import { decodeTask } from '../shared/wire.js';
import type { InflightMarkers } from './inflight.js';
import { Leases } from './leases.js';
import type { WorkerMetrics } from './metrics.js';
import type { ResultPublisher } from './publisher.js';
import type { Recent } from './recent.js';

/** One task a slot runs (or will), and where its delivery came from. */
interface Delivery {
  readonly task: TaskMessage & { replyTo: string };
  readonly message: Message;
  readonly channel: Channel;
  /** Set when the broker took the delivery back while the task ran (consumer_timeout). */
  lost?: string;
  /** When the task started, in ms since the epoch. */
  startedAt?: number;
  /** Its in-flight marker, removed once the delivery is settled. */
  marker?: string | undefined;
  /** Tells the tasker the task started, if it runs long enough. */
  notice?: NodeJS.Timeout;
}

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
  /** Whether deliveries of `channel` are still acknowledged on it (it is the consumer's). */
  readonly isCurrent: (channel: Channel) => boolean;
  /** A delivery came or a task ended: the worker is not idle. */
  readonly active: () => void;
  /** The worker's metrics, once it serves them. */
  readonly metrics: () => WorkerMetrics | undefined;
}

/** A task still running after this long tells its tasker it started (status shows it running). */
const STARTED_NOTICE_AFTER = 1000;

function firstLine(command: string): string {
  const line = command.split('\n', 1)[0] ?? '';
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

/** Runs a channel operation that may find the channel closed; a closed channel needs nothing more. */
function safely(operation: () => unknown): void {
  try {
    operation();
  } catch {
    // the channel is gone: the broker has requeued its deliveries
  }
}

/**
 * A worker's deliveries, from the consumer to the acknowledgement: refuses what it cannot read
 * or trust (dead-lettered), drops what is done or cancelled, runs the rest on the worker's
 * slots, publishes each result with a confirm and only then acknowledges the delivery. A
 * delivery that waits for a slot is never handed back (a nack would count toward its delivery
 * limit on RabbitMQ before 4.3); with prefetch = concurrency one waits only after a reconnect
 * while tasks of the lost channel still run.
 */
export class Deliveries {
  private readonly pool: SlotPool<Delivery>;
  private readonly leases: Leases<Delivery>;

  constructor(private readonly options: DeliveriesOptions) {
    this.leases = new Leases<Delivery>({
      worker: options.worker,
      intervalMs: options.leaseIntervalMs,
      send: (replyTo, lease) => options.publisher.lease(replyTo, lease),
      // A held delivery of a channel that is gone is back in the queue; a running one is ours.
      listed: (delivery, state) => state === 'running' || options.isCurrent(delivery.channel),
    });
    this.pool = new SlotPool<Delivery>(options.slots, {
      admit: (delivery) => this.admit(delivery),
      starting: (delivery, slot) => this.starting(delivery, slot),
      ended: (delivery, outcome, slot) => this.ended(delivery, outcome, slot.worker),
    });
  }

  /** Slots running a task now (the metrics' busy slots). */
  get running(): number {
    return this.pool.running;
  }

  /** Takes a delivery from the consumer: refuses, drops or queues it for a slot. */
  async take(channel: Channel, message: ConsumeMessage): Promise<void> {
    const { log, queue, signingKey, recent, publisher } = this.options;
    this.options.active();
    const refuse = (reason: string) => {
      log.warn(
        `refused a message on \`${queue}\` (dead-lettered to \`${NAMES.deadQueue}\`): ${reason}`,
      );
      safely(() => channel.reject(message, false));
    };
    if (signingKey) {
      const bad = checkSignature(signingKey, message);
      if (bad) {
        refuse(`task ${String(message.properties.messageId ?? '(no id)')} refused: ${bad}`);
        return;
      }
    }
    const decoded = decodeTask(message);
    if (!decoded.ok) {
      refuse(decoded.reason);
      return;
    }
    const task = decoded.value;
    if (
      recent.resultIn(task) ||
      recent.cancelled(task.run) ||
      !(await publisher.isAlive(task.replyTo))
    ) {
      // Done already, or its run is over: acknowledge it without running it.
      log.info(
        { run: task.run, task: task.task },
        `dropped task ${task.task}: its run is finished or cancelled, or its result is in`,
      );
      safely(() => channel.ack(message));
      return;
    }
    const delivery: Delivery = { task, message, channel };
    this.leases.hold(delivery);
    this.pool.add(delivery);
  }

  /**
   * The broker took back the deliveries of a channel because one outlived `consumer_timeout`
   * (RabbitMQ closes the channel up to 4.2 and cancels the consumer from 4.3). The tasks are
   * stopped (another worker will get them) and their run hears why.
   */
  leaseLost(channel: Channel, timeoutMs: number | undefined): void {
    const limit = timeoutMs === undefined ? '' : ` (${formatDuration(timeoutMs)})`;
    const now = Date.now();
    const age = (running: Delivery) => now - (running.startedAt ?? now);
    const mine = this.pool.runningJobs().filter((running) => running.channel === channel);
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
      running.lost = `the broker took the task back: it ran longer than consumer_timeout${limit}; raise consumer_timeout above the longest task`;
      this.options.log.error(
        { run: running.task.run, task: running.task.task },
        `task ${running.task.task} ran longer than the broker's consumer_timeout${limit}: the broker took it back, so it is stopped here. Raise consumer_timeout (rabbitmq.conf \`consumer_timeout = <ms>\`, or the RabbitmqCluster's additionalConfig) above the longest task`,
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
   * broker gives them to another worker), waits for results being published and acknowledged,
   * and ends the slots' shells.
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
    // Finished tasks may still be publishing their result and acknowledging: let them.
    await this.pool.settled();
    this.leases.close();
    await this.pool.close();
  }

  /** A waiting delivery gets a slot: unless it is stale, done or cancelled meanwhile. */
  private admit(delivery: Delivery): boolean {
    // A delivery of a channel that is gone is back in the queue already.
    if (!this.options.isCurrent(delivery.channel)) {
      this.leases.release(delivery);
      return false;
    }
    // It waited: its result may have come in (from a slot of ours) or its run been cancelled.
    const { task } = delivery;
    const { recent } = this.options;
    if (recent.resultIn(task) || recent.cancelled(task.run)) {
      this.options.log.info(
        { run: task.run, task: task.task },
        `dropped task ${task.task}: its run is cancelled, or its result is in`,
      );
      safely(() => delivery.channel.ack(delivery.message));
      this.leases.release(delivery);
      return false;
    }
    return true;
  }

  private starting(delivery: Delivery, slot: { readonly worker: string; readonly host: string }) {
    const { task } = delivery;
    const startedAt = new Date();
    delivery.startedAt = startedAt.getTime();
    this.leases.run(delivery);
    try {
      delivery.marker = this.options.markers.write({
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
    delivery.notice = setTimeout(
      () => this.options.publisher.started(task, slot.worker, slot.host, startedAt),
      STARTED_NOTICE_AFTER,
    );
    this.options.log
      .child({ run: task.run, task: task.task, worker: slot.worker })
      .debug(`running attempt ${task.attempt}: ${task.command}`);
  }

  private async ended(delivery: Delivery, outcome: SlotOutcome, worker: string): Promise<void> {
    try {
      await this.settle(delivery, outcome, worker);
    } finally {
      this.leases.release(delivery);
    }
  }

  /** Publishes the result of an ended task and acknowledges its delivery (or hands it back). */
  private async settle(delivery: Delivery, outcome: SlotOutcome, worker: string): Promise<void> {
    const { task, message, channel } = delivery;
    const { publisher, markers, recent } = this.options;
    clearTimeout(delivery.notice);
    if (!outcome.result) throw outcome.error;
    let result: TaskResult = outcome.result;
    const log = this.options.log.child({ run: task.run, task: task.task, worker });
    this.options.active();
    if (delivery.lost) {
      result = {
        ...result,
        state: 'failed',
        failure: 'lost',
        reason: delivery.lost,
        exitCode: null,
      };
    } else if (result.state === 'cancelled' && !recent.cancelled(task.run)) {
      // Stopped by our shutdown: leave it to another worker (nack does not count toward the
      // delivery limit on RabbitMQ 4.3+; a closed channel requeues it anyway).
      safely(() => channel.nack(message, false, true));
      markers.remove(delivery.marker);
      return;
    }
    const elapsed = Date.parse(result.finishedAt) - Date.parse(result.startedAt);
    if (result.state === 'succeeded')
      log.info(`succeeded in ${formatDuration(elapsed)}: ${firstLine(task.command)}`);
    else log.warn(`${result.reason} after ${formatDuration(elapsed)}: ${firstLine(task.command)}`);
    this.options.metrics()?.ended(result);
    if (await publisher.result(result, task.replyTo)) recent.rememberResult(task);
    if (this.options.isCurrent(channel) && !delivery.lost) {
      safely(() => channel.ack(message));
    } else {
      // The channel this delivery came on is gone: the broker gave it back to the queue, and
      // whoever gets it next sees its result is already in (the tasker drops the duplicate).
      log.info(
        'the broker took this delivery back while the task ran; its result is published all the same',
      );
    }
    markers.remove(delivery.marker);
  }
}
