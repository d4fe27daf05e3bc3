import type { Server } from 'node:http';
import type { ChannelModel } from 'amqplib';
import { Broker, type BrokerOptions } from '../shared/broker.js';
import { listenToControl } from '../shared/control.js';
import { formatDuration } from '../shared/duration.js';
import { EXIT } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { DEFAULT_CLASS } from '../shared/topology.js';
import type { WorkerConfig } from './config.js';
import { TaskConsumer } from './consumer.js';
import { Deliveries } from './deliveries.js';
import { startHealthServer } from './health.js';
import { Holding } from './holding.js';
import { InflightMarkers } from './inflight.js';
import { reportLeftovers } from './leftovers.js';
import { WorkerMetrics } from './metrics.js';
import { NameClaim } from './nameClaim.js';
import { ResultPublisher } from './publisher.js';
import { Recent } from './recent.js';
import { RunSight } from './runSight.js';

/**
 * Where a worker is in its life: `starting` (connecting, and waiting for the task queue),
 * `running`, `stopping` (SIGTERM, drain, idle or a broker gone for good: no more deliveries,
 * running tasks get their grace) and `stopped`.
 */
export type WorkerState = 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * A worker: takes tasks (one, or a batch) from the task queue, holding what Holding decides
 * (its slots, a few more while tasks are short) or `--prefetch`, runs each with the same slot
 * pool as local mode, publishes a delivery's results to the run's results queue with a
 * publisher confirm, and only then acknowledges it. A failed command is a failed
 * result; a message it cannot read, or that is not signed when it should be, is rejected
 * (dead-lettered) and logged, never a crash.
 */
export class Worker {
  private state: WorkerState = 'starting';
  private readonly recent = new Recent();
  private readonly publisher: ResultPublisher;
  private readonly markers: InflightMarkers;
  private readonly consumer: TaskConsumer;
  private readonly name: NameClaim;
  private readonly deliveries: Deliveries;
  private readonly holding: Holding;
  private broker: Broker | undefined;
  private lastActivity = Date.now();
  private finished: ((code: number) => void) | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private servers: Server[] = [];
  private metrics: WorkerMetrics | undefined;

  constructor(
    private readonly config: WorkerConfig & { broker: BrokerOptions },
    private readonly log: Logger,
  ) {
    this.publisher = new ResultPublisher(log);
    this.markers = new InflightMarkers(config.inflightDir);
    this.name = new NameClaim(config.workerName, config.queue);
    this.consumer = new TaskConsumer(
      config.queue,
      config.prefetch,
      log,
      {
        delivery: (channel, message) => void this.deliveries.take(channel, message),
        leaseLost: (channel, timeoutMs) =>
          this.deliveries.leaseLost(channel, timeoutMs, this.consumer.ownTimeoutMs),
        queueAlive: (queue, how) => this.publisher.isAlive(queue, how),
      },
      config.holdMore > 0,
      () => this.deliveries.running,
      config.longestTaskMs,
    );
    this.deliveries = new Deliveries({
      slots: {
        slots: config.concurrency,
        prefix: config.workerName,
        workdir: config.workdir,
        stateDir: config.stateDir,
        killGraceMs: config.killGraceMs,
        env: config.taskEnv,
        onShellError: (line) => log.warn(`task shell: ${line}`),
        s3: config.s3,
        uploadGlobs: config.upload,
      },
      queue: config.queue,
      signingKey: config.signingKey,
      worker: config.workerName,
      leaseIntervalMs: config.leaseIntervalMs,
      log,
      publisher: this.publisher,
      markers: this.markers,
      recent: this.recent,
      sight: new RunSight(config.stateDir),
      backOff: (ms) => this.consumer.pause(ms),
      isCurrent: (channel) => this.consumer.isCurrent(channel),
      active: () => {
        this.lastActivity = Date.now();
      },
      metrics: () => this.metrics,
      settled: (tookMs) => this.holding.settled(tookMs),
      redelivered: () => this.holding.redelivered(),
      released: (channel, message) => this.consumer.released(channel, message),
      taskEnded: () => this.consumer.nudge(),
    });
    this.holding = new Holding({
      adaptive: config.holdMore > 0,
      holdMore: (more) => this.consumer.setLimit(config.concurrency + (more ? config.holdMore : 0)),
      oldestStart: () => this.deliveries.oldestStart,
      stuck: (waitedMs) => this.deliveries.stuck(waitedMs),
      giveBack: (waitedMs) => (this.stopping ? 0 : this.deliveries.giveBack(waitedMs)),
    });
  }

  private get stopping(): boolean {
    return this.state === 'stopping' || this.state === 'stopped';
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
            () => this.deliveries.running,
            this.config.workerName,
          )
        : undefined;
    this.metrics = metrics;
    if (this.config.healthPort > 0) {
      const health = await startHealthServer(this.config.healthPort, {
        // Connected and consuming, or connected and waiting for a tasker to declare the queue.
        ready: () => !this.stopping && this.consumer.ready,
        // One port for both when they are the same.
        metrics: this.config.metricsPort === this.config.healthPort ? metrics : undefined,
      });
      this.servers.push(health);
    }
    if (metrics && this.config.metricsPort !== this.config.healthPort) {
      this.servers.push(await startHealthServer(this.config.metricsPort, { metrics }));
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
    this.state = 'running';
    this.broker.onGiveUp((error) => {
      this.log.error(error.message);
      this.publisher.giveUp();
      void this.shutdown(EXIT.INFRA);
    });
    this.log.info(
      `worker ${this.config.workerName} taking tasks from \`${this.config.queue}\`${this.config.sizeClass === DEFAULT_CLASS ? '' : ` (size class ${this.config.sizeClass})`} with ${this.config.concurrency} slot(s) in ${this.config.workdir}${this.config.signingKey ? '; tasks must be signed' : ''}`,
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
    this.state = 'stopping';
    this.deliveries.hold();
    clearInterval(this.idleTimer);
    this.holding.close();
    await this.consumer.stop();
    await this.deliveries.stop(this.config.graceMs);
    await this.broker?.close();
    for (const server of this.servers) server.close();
    this.state = 'stopped';
    this.finished?.(code);
  }

  private async onConnect(model: ChannelModel): Promise<void> {
    // First: slot logs and in-flight markers are named after the worker, so no two may share it.
    await this.name.claim(model);
    this.consumer.attach(model);
    await this.publisher.attach(model);
    await this.consumer.waitForQueue();
    if (this.stopping) return;
    await listenToControl(model, {
      message: (message) => {
        if (message.action === 'drain') {
          this.log.info('drain requested: finishing running tasks, then exiting');
          void this.shutdown(EXIT.OK);
        } else {
          this.deliveries.cancelRun(message.run);
        }
      },
      unreadable: (reason) => this.log.warn(`ignored a control message: ${reason}`),
    });
    // Before taking tasks: the broker is about to hand the dead container's task out again.
    await reportLeftovers(this.markers, this.publisher, this.recent, this.log);
    if (!this.stopping) await this.consumer.consume();
  }

  private async checkIdle(): Promise<void> {
    if (this.stopping || this.deliveries.running > 0) return;
    if (Date.now() - this.lastActivity < this.config.exitWhenIdleMs) return;
    const depth = await this.consumer.depth();
    if (depth === undefined) return;
    if (
      depth === 0 &&
      this.deliveries.running === 0 &&
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
