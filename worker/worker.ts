import type { Server } from 'node:http';
import { hostname } from 'node:os';
import type { Channel, ChannelModel, ConsumeMessage, Message } from 'amqplib';
import { Launcher } from '../exec/launcher.js';
import { OomCounter } from '../exec/oom.js';
import { runTask, type TaskContext, uploadsFor } from '../exec/runTask.js';
import { SlotLog } from '../exec/slotLog.js';
import { Broker, type BrokerOptions } from '../shared/broker.js';
import { formatDuration, SECOND } from '../shared/duration.js';
import { describeSystemError, EXIT } from '../shared/errors.js';
import { failedResult } from '../shared/failedResult.js';
import type { Logger } from '../shared/logger.js';
import type { TaskMessage, TaskResult } from '../shared/protocol.js';
import { checkSignature } from '../shared/signing.js';
import { NAMES } from '../shared/topology.js';
import { decodeControl, decodeTask } from '../shared/wire.js';
import type { WorkerConfig } from './config.js';
import { startHealthServer } from './health.js';
import { InflightMarkers } from './inflight.js';
import { WorkerMetrics } from './metrics.js';
import { ResultPublisher } from './publisher.js';

/** One task a slot is running, and where its delivery came from. */
interface Running {
  readonly task: TaskMessage & { replyTo: string };
  readonly message: Message;
  readonly channel: Channel;
  /** Set when the broker took the delivery back while the task ran (consumer_timeout). */
  lost?: string;
  /** When the task started, in ms since the epoch. */
  startedAt?: number;
}

/** Results published recently, so a redelivery of one of them is acknowledged without running it. */
const REMEMBERED = 10_000;

/** A task still running after this long tells its tasker it started (status shows it running). */
const STARTED_NOTICE_AFTER = 1000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A bounded set: the oldest entries go first. */
function remember(set: Set<string>, key: string): void {
  set.add(key);
  if (set.size > REMEMBERED) {
    const oldest = set.values().next().value;
    if (oldest !== undefined) set.delete(oldest);
  }
}

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
 * A worker: takes tasks from the task queue one per slot (prefetch = concurrency), runs each
 * with the same `runTask` as local mode, publishes its result to the run's results queue with
 * a publisher confirm, and only then acknowledges the task. A failed command is a failed
 * result; a message it cannot read, or that is not signed when it should be, is rejected
 * (dead-lettered) and logged, never a crash.
 */
export class Worker {
  private readonly free: TaskContext[];
  private readonly running = new Map<TaskContext, Running>();
  /** Deliveries waiting for a free slot. */
  private backlog: Running[] = [];
  /** Deliveries being run, reported or acknowledged. */
  private finishing = 0;
  private readonly remembered = new Set<string>();
  private readonly cancelledRuns = new Set<string>();
  private readonly publisher: ResultPublisher;
  private readonly markers: InflightMarkers;
  private broker: Broker | undefined;
  private model: ChannelModel | undefined;
  private consumer: { readonly channel: Channel; tag: string } | undefined;
  private stopping = false;
  private waitingForQueue = false;
  private lastActivity = Date.now();
  private finished: ((code: number) => void) | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private health: Server | undefined;
  private metricsServer: Server | undefined;
  private metrics: WorkerMetrics | undefined;

  constructor(
    private readonly config: WorkerConfig & { broker: BrokerOptions },
    private readonly log: Logger,
  ) {
    const host = hostname();
    const oom = OomCounter.locate();
    this.publisher = new ResultPublisher(log);
    this.markers = new InflightMarkers(config.inflightDir);
    const uploads = uploadsFor(config.s3, config.upload, config.stateDir);
    this.free = Array.from({ length: config.concurrency }, (_, i) => {
      const name = `${config.workerName}-${i + 1}`;
      return {
        launcher: new Launcher({
          env: config.taskEnv,
          graceMs: config.killGraceMs,
          onShellError: (line) => log.warn(`task shell: ${line}`),
        }),
        workdir: config.workdir,
        log: new SlotLog(config.stateDir, name),
        worker: name,
        host,
        oom,
        uploads,
      };
    }).reverse();
  }

  /** Runs until stopped (SIGTERM, idle, drain) or the broker is gone for good; returns the exit code. */
  async run(): Promise<number> {
    const done = new Promise<number>((resolve) => {
      this.finished = resolve;
    });
    // Probes answer from the start: /livez while connecting, /readyz once connected.
    const metrics =
      this.config.metricsPort > 0
        ? new WorkerMetrics(
            this.config.concurrency,
            () => this.running.size,
            this.config.workerName,
          )
        : undefined;
    this.metrics = metrics;
    if (this.config.healthPort > 0) {
      this.health = await startHealthServer(this.config.healthPort, {
        // Connected and consuming, or connected and waiting for a tasker to declare the queue.
        ready: () =>
          !this.stopping &&
          this.model !== undefined &&
          (this.consumer !== undefined || this.waitingForQueue),
        // One port for both when they are the same.
        metrics: this.config.metricsPort === this.config.healthPort ? metrics : undefined,
      });
    }
    if (metrics && this.config.metricsPort !== this.config.healthPort) {
      this.metricsServer = await startHealthServer(this.config.metricsPort, { metrics });
    }
    this.broker = await Broker.connect(
      { ...this.config.broker, name: `warren worker ${this.config.workerName}` },
      this.log,
      [(model) => this.onConnect(model)],
    );
    // Stopped while connecting (SIGTERM before the task queue existed): nothing more to start.
    if (this.stopping) {
      await this.broker.close();
      return done;
    }
    this.broker.onGiveUp((error) => {
      this.log.error(error.message);
      this.publisher.giveUp();
      void this.shutdown(EXIT.INFRA);
    });
    this.log.info(
      `worker ${this.config.workerName} taking tasks from \`${this.config.queue}\` with ${this.config.concurrency} slot(s) in ${this.config.workdir}${this.config.signingKey ? '; tasks must be signed' : ''}`,
    );
    if (this.config.exitWhenIdleMs > 0) {
      this.idleTimer = setInterval(
        () => void this.checkIdle(),
        Math.min(1000, this.config.exitWhenIdleMs),
      );
    }
    return done;
  }

  /**
   * Stops taking tasks, lets running ones finish within the grace period, stops the rest (they
   * are requeued for another worker), closes the connection and resolves `run` with `code`.
   */
  async shutdown(code: number = EXIT.OK): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.idleTimer);
    // Stop deliveries but keep the channel: the running tasks' deliveries are acked on it.
    const consumer = this.consumer;
    if (consumer) await consumer.channel.cancel(consumer.tag).catch(() => {});
    if (this.running.size > 0) {
      this.log.info(
        `waiting up to ${formatDuration(this.config.graceMs)} for ${this.running.size} running task(s)`,
      );
      const deadline = Date.now() + this.config.graceMs;
      while (this.running.size > 0 && Date.now() < deadline) await sleep(100);
      if (this.running.size > 0) {
        this.log.warn(
          `stopping ${this.running.size} task(s) still running; the broker will give them to another worker`,
        );
        await Promise.all([...this.running.keys()].map((slot) => slot.launcher.stop('cancel')));
        while (this.running.size > 0) await sleep(20);
      }
    }
    // Finished tasks may still be publishing their result and acknowledging: let them.
    while (this.finishing > 0) await sleep(20);
    await Promise.all(this.free.map((slot) => slot.launcher.close()));
    for (const slot of this.free) slot.log.close();
    await this.broker?.close();
    this.health?.close();
    this.metricsServer?.close();
    this.finished?.(code);
  }

  private async onConnect(model: ChannelModel): Promise<void> {
    // Forget a connection as soon as it closes: nothing may open channels on it afterwards.
    model.on('close', () => {
      if (this.model === model) this.model = undefined;
    });
    this.model = model;
    await this.publisher.attach(model);
    await this.waitForQueue(model);
    if (this.stopping) return;
    await this.listenToControl(model);
    // Before taking tasks: the broker is about to hand the dead container's task out again.
    await this.reportLeftovers();
    if (!this.stopping) await this.consume(model);
  }

  /** The tasker declares the task queue; a worker started first waits for it. */
  private async waitForQueue(model: ChannelModel): Promise<void> {
    let said = 0;
    this.waitingForQueue = true;
    try {
      await this.pollQueue(model, () => {
        if (Date.now() - said > 30 * SECOND) {
          this.log.info(
            `task queue \`${this.config.queue}\` does not exist yet; waiting for a tasker to declare it`,
          );
          said = Date.now();
        }
      });
    } finally {
      this.waitingForQueue = false;
    }
  }

  /** Resolves once the task queue exists, or the worker is stopping. */
  private async pollQueue(model: ChannelModel, missing: () => void): Promise<void> {
    while (!this.stopping) {
      const channel = await model.createChannel();
      channel.on('error', () => {});
      try {
        await channel.checkQueue(this.config.queue);
        await channel.close().catch(() => {});
        return;
      } catch (error) {
        if (!/NOT_FOUND/.test(String((error as Error).message))) throw error;
      }
      missing();
      for (let waited = 0; waited < 2000 && !this.stopping; waited += 100) await sleep(100);
    }
  }

  private async listenToControl(model: ChannelModel): Promise<void> {
    const channel = await model.createChannel();
    channel.on('error', () => {});
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, NAMES.controlExchange, '');
    await channel.consume(
      queue,
      (message) => {
        if (!message) return;
        const decoded = decodeControl(message);
        if (!decoded.ok) {
          this.log.warn(`ignored a control message: ${decoded.reason}`);
          return;
        }
        if (decoded.value.action === 'drain') {
          this.log.info('drain requested: finishing running tasks, then exiting');
          void this.shutdown(EXIT.OK);
        } else {
          this.cancelRun(decoded.value.run);
        }
      },
      { noAck: true },
    );
  }

  private async consume(model: ChannelModel): Promise<void> {
    const channel = await model.createChannel();
    channel.on('error', (error: Error) => {
      const timeout =
        /delivery acknowledgement on channel \d+ timed out\. Timeout value used: (\d+) ms/.exec(
          error.message,
        );
      if (timeout) this.leaseLost(channel, Number(timeout[1]));
      else this.log.warn(`task channel closed by the broker: ${error.message}`);
    });
    channel.on('close', () => {
      if (this.consumer?.channel !== channel) return;
      this.consumer = undefined;
      // The connection may be fine (a channel-level error): take the queue up again. If the
      // connection went, the broker's recovery calls onConnect instead.
      setTimeout(() => {
        if (!this.stopping && this.model === model && !this.consumer) {
          void this.consume(model).catch((error: unknown) =>
            this.log.debug({ err: error }, 'could not consume again'),
          );
        }
      }, 1000);
    });
    await channel.prefetch(this.config.prefetch);
    // Known as the consumer before the first delivery, which can come before consume() resolves.
    const consumer = { channel, tag: '' };
    this.consumer = consumer;
    const { consumerTag } = await channel.consume(
      this.config.queue,
      (message) => void this.onDelivery(channel, message),
      {
        noAck: false,
      },
    );
    consumer.tag = consumerTag;
  }

  /**
   * The broker took back the deliveries of a channel because one outlived `consumer_timeout`
   * (RabbitMQ closes the channel up to 4.2 and cancels the consumer from 4.3). The tasks are
   * stopped (another worker will get them) and their run hears why.
   */
  private leaseLost(channel: Channel, timeoutMs: number | undefined): void {
    const limit = timeoutMs === undefined ? '' : ` (${formatDuration(timeoutMs)})`;
    const now = Date.now();
    const age = (running: Running) => now - (running.startedAt ?? now);
    const mine = [...this.running].filter(([, running]) => running.channel === channel);
    // Only the tasks that outlived the timeout (with RabbitMQ 4.3+, which does not say the
    // timeout, the oldest): the others keep running and publish their results, though their
    // deliveries went back to the queue too (a redelivery of a result already in is dropped).
    let over = mine.filter(([, running]) => timeoutMs !== undefined && age(running) >= timeoutMs);
    if (over.length === 0 && mine.length > 0)
      over = [mine.reduce((a, b) => (age(b[1]) > age(a[1]) ? b : a))];
    for (const [, running] of mine) {
      if (over.some(([, stopped]) => stopped === running)) continue;
      this.log.info(
        { run: running.task.run, task: running.task.task },
        `task ${running.task.task} keeps running: the broker took back this channel's deliveries for another task's sake; its result is published all the same`,
      );
    }
    for (const [slot, running] of over) {
      running.lost = `the broker took the task back: it ran longer than consumer_timeout${limit}; raise consumer_timeout above the longest task`;
      this.log.error(
        { run: running.task.run, task: running.task.task },
        `task ${running.task.task} ran longer than the broker's consumer_timeout${limit}: the broker took it back, so it is stopped here. Raise consumer_timeout (rabbitmq.conf \`consumer_timeout = <ms>\`, or the RabbitmqCluster's additionalConfig) above the longest task`,
      );
      void slot.launcher.stop('cancel');
    }
  }

  private async onDelivery(channel: Channel, message: ConsumeMessage | null): Promise<void> {
    if (!message) {
      const queueLeft = this.model ? await this.publisher.isAlive(this.config.queue) : false;
      this.log.warn(
        queueLeft
          ? `the broker cancelled our consumer on \`${this.config.queue}\`: a task outlived consumer_timeout (RabbitMQ 4.3+); raise it above the longest task`
          : `the broker cancelled our consumer on \`${this.config.queue}\`: the queue is gone`,
      );
      if (queueLeft) this.leaseLost(channel, undefined);
      if (this.consumer?.channel === channel) this.consumer = undefined;
      await channel.close().catch(() => {});
      if (!this.stopping && this.model) await this.consume(this.model).catch(() => {});
      return;
    }
    this.lastActivity = Date.now();
    const refuse = (reason: string) => {
      this.log.warn(
        `refused a message on \`${this.config.queue}\` (dead-lettered to \`${NAMES.deadQueue}\`): ${reason}`,
      );
      safely(() => channel.reject(message, false));
    };
    if (this.config.signingKey) {
      const bad = checkSignature(this.config.signingKey, message);
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
      this.remembered.has(`${task.task}.${task.attempt}`) ||
      this.cancelledRuns.has(task.run) ||
      !(await this.publisher.isAlive(task.replyTo))
    ) {
      // Done already, or its run is over: acknowledge it without running it.
      this.log.info(
        { run: task.run, task: task.task },
        `dropped task ${task.task}: its run is finished or cancelled, or its result is in`,
      );
      safely(() => channel.ack(message));
      return;
    }
    this.backlog.push({ task, message, channel });
    this.dispatch();
  }

  /**
   * Gives waiting deliveries to free slots. With prefetch = concurrency a delivery waits only
   * after a reconnect while tasks of the lost channel still run; it is never handed back (a
   * nack would count toward its delivery limit on RabbitMQ before 4.3).
   */
  private dispatch(): void {
    while (!this.stopping && this.free.length > 0 && this.backlog.length > 0) {
      const next = this.backlog.shift() as Running;
      // A delivery of a channel that is gone is back in the queue already.
      if (next.channel !== this.consumer?.channel) continue;
      // It waited: its result may have come in (from a slot of ours) or its run been cancelled.
      const { task } = next;
      if (this.remembered.has(`${task.task}.${task.attempt}`) || this.cancelledRuns.has(task.run)) {
        this.log.info(
          { run: task.run, task: task.task },
          `dropped task ${task.task}: its run is cancelled, or its result is in`,
        );
        safely(() => next.channel.ack(next.message));
        continue;
      }
      void this.runDelivery(this.free.pop() as TaskContext, next);
    }
  }

  private async runDelivery(slot: TaskContext, delivery: Running): Promise<void> {
    this.finishing++;
    try {
      await this.runAndReport(slot, delivery);
    } finally {
      this.finishing--;
    }
  }

  private async runAndReport(slot: TaskContext, delivery: Running): Promise<void> {
    const { task, message, channel } = delivery;
    const key = `${task.task}.${task.attempt}`;
    const startedAt = new Date();
    delivery.startedAt = startedAt.getTime();
    this.running.set(slot, delivery);
    let marker: string | undefined;
    try {
      marker = this.markers.write({
        ...task,
        worker: slot.worker,
        host: slot.host,
        startedAt: startedAt.toISOString(),
      });
    } catch (error) {
      // The marker only helps report a container killed with its task: run the task anyway.
      this.log.warn(
        `could not write the in-flight marker of task ${task.task}: ${describeSystemError(error)}`,
      );
    }
    // Short tasks say nothing until their result (the result has the start time): a notice
    // per task would cost the broker a message each. Longer ones say they started.
    const notice = setTimeout(
      () => this.publisher.started(task, slot.worker, slot.host, startedAt),
      STARTED_NOTICE_AFTER,
    );
    const log = this.log.child({ run: task.run, task: task.task, worker: slot.worker });
    log.debug(`running attempt ${task.attempt}: ${task.command}`);
    let result: TaskResult;
    try {
      result = await runTask(task, slot);
    } finally {
      clearTimeout(notice);
      this.running.delete(slot);
      this.free.push(slot);
      this.dispatch();
    }
    this.lastActivity = Date.now();
    if (delivery.lost) {
      result = {
        ...result,
        state: 'failed',
        failure: 'lost',
        reason: delivery.lost,
        exitCode: null,
      };
    } else if (result.state === 'cancelled' && !this.cancelledRuns.has(task.run)) {
      // Stopped by our shutdown: leave it to another worker (nack does not count toward the
      // delivery limit on RabbitMQ 4.3+; a closed channel requeues it anyway).
      safely(() => channel.nack(message, false, true));
      this.markers.remove(marker);
      return;
    }
    const elapsed = Date.parse(result.finishedAt) - Date.parse(result.startedAt);
    if (result.state === 'succeeded')
      log.info(`succeeded in ${formatDuration(elapsed)}: ${firstLine(task.command)}`);
    else log.warn(`${result.reason} after ${formatDuration(elapsed)}: ${firstLine(task.command)}`);
    this.metrics?.ended(result);
    if (await this.publisher.result(result, task.replyTo)) remember(this.remembered, key);
    if (channel === this.consumer?.channel && !delivery.lost) {
      safely(() => channel.ack(message));
    } else {
      // The channel this delivery came on is gone: the broker gave it back to the queue, and
      // whoever gets it next sees its result is already in (the tasker drops the duplicate).
      log.info(
        'the broker took this delivery back while the task ran; its result is published all the same',
      );
    }
    this.markers.remove(marker);
  }

  /** Reports the attempts a previous life of this worker died in (its container killed with them). */
  private async reportLeftovers(): Promise<void> {
    for (const { marker, path } of this.markers.leftovers()) {
      const now = new Date().toISOString();
      this.log.warn(
        { run: marker.run, task: marker.task },
        `task ${marker.task} (attempt ${marker.attempt}) was running when this worker's container died; reporting it lost`,
      );
      await this.publisher.result(
        failedResult(marker, {
          failure: 'lost',
          reason:
            "the worker's container died while running it (killed with its task, e.g. out of memory)",
          worker: marker.worker,
          host: marker.host,
          startedAt: marker.startedAt,
          finishedAt: now,
        }),
        marker.replyTo,
      );
      // Its delivery comes back from the broker; it is not run again.
      remember(this.remembered, `${marker.task}.${marker.attempt}`);
      this.markers.remove(path);
    }
  }

  private cancelRun(run: string): void {
    remember(this.cancelledRuns, run);
    for (const [slot, running] of this.running) {
      if (running.task.run === run) {
        this.log.info(
          { run, task: running.task.task },
          `run ${run} was cancelled: stopping its task`,
        );
        void slot.launcher.stop('cancel');
      }
    }
  }

  private async checkIdle(): Promise<void> {
    if (this.stopping || this.running.size > 0) return;
    if (Date.now() - this.lastActivity < this.config.exitWhenIdleMs || !this.model) return;
    const channel = await this.model.createChannel().catch(() => undefined);
    if (!channel) return;
    channel.on('error', () => {});
    const depth = await channel.checkQueue(this.config.queue).then(
      (queue) => queue.messageCount,
      () => -1,
    );
    await channel.close().catch(() => {});
    if (
      depth === 0 &&
      this.running.size === 0 &&
      Date.now() - this.lastActivity >= this.config.exitWhenIdleMs
    ) {
      this.log.info(
        `queue empty and idle for ${formatDuration(this.config.exitWhenIdleMs)}: exiting`,
      );
      await this.shutdown(EXIT.OK);
    } else if (depth > 0) {
      this.lastActivity = Date.now();
    }
  }
}
