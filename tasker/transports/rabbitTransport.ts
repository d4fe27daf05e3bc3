import type { ChannelModel } from 'amqplib';
import { Broker, type BrokerOptions, brokerAddress } from '../../shared/broker.js';
import { brokerVersionOf, queueTimeout } from '../../shared/consumerTimeout.js';
import { cancelMessage, listenToControl, sendControl } from '../../shared/control.js';
import type { Logger } from '../../shared/logger.js';
import type { TaskMessage } from '../../shared/protocol.js';
import {
  classQueue,
  declareResultsQueue,
  declareTopology,
  resultsQueue,
} from '../../shared/topology.js';
import { Batcher } from './batcher.js';
import { type DeleteOptions, deleteResultsQueue, resultsWaiting } from './resultsQueue.js';
import { ResultsReader } from './resultsReader.js';
import { TaskPublisher } from './taskPublisher.js';
import type { QueueView, RunEnd, Transport, TransportListener } from './transport.js';

export interface RabbitTransportOptions {
  readonly broker: BrokerOptions;
  readonly run: string;
  /** The task queue. */
  readonly queue: string;
  readonly deliveryLimit: number;
  /** The longest task: the task queues' `x-consumer-timeout` where the broker takes it. */
  readonly consumerTimeoutMs?: number | undefined;
  /** Most messages published and not yet confirmed by the broker. */
  readonly window: number;
  /** Most tasks in one message (1: every task on its own). */
  readonly batchSize: number;
  readonly log: Logger;
  /** Signs every task (HMAC-SHA256) when set. */
  readonly signingKey?: string | undefined;
  /** Called when a `cancel` for this run comes over the control exchange. */
  readonly onCancel?: (() => void) | undefined;
  /**
   * Leave the run's results in its queue for `tasker collect` (a `send --no-wait` run): read
   * none, and keep the queue when the run finishes. @defaultValue false
   */
  readonly leaveResults?: boolean | undefined;
  /**
   * `run` (the default) declares the topology and the run's results queue, publishes tasks and
   * reads results; `control` only connects, for `tasker cancel`: it declares nothing (a run
   * that is over must not get its results queue back), so it cannot take tasks.
   */
  readonly purpose?: 'run' | 'control';
  /** The run's stamp, sent with each task (see openTransport). */
  readonly stamp?: (() => string | undefined) | undefined;
  /** The run's working directory, for what the tasker says of workers that do not share it. */
  readonly workdir?: string | undefined;
  /**
   * Size classes (`--classes`, smallest first): each one's queue is declared beside the task
   * queue, and a task whose `class` names one is published there. @defaultValue none
   */
  readonly classes?: readonly string[];
}

/**
 * The RabbitMQ transport of a tasker: publishes tasks to the task queue (TaskPublisher: confirms,
 * a bounded window, republishing after a reconnect) and consumes the run's own results queue
 * (ResultsReader: each result acknowledged only once the ledger has it). Survives a broker
 * restart: channels come back on reconnect, and results wait in their durable queue.
 */
export class RabbitTransport implements Transport {
  readonly mode = 'rabbitmq';
  readonly description: string;
  readonly sizeClasses: readonly string[];
  readonly resultsQueue: string;
  private broker: Broker | undefined;
  private model: ChannelModel | undefined;
  private listener: TransportListener | undefined;
  /** `open` while running; `closing` once results are no more read (finish or close). */
  private state: 'open' | 'closing' = 'open';
  private consuming = false;
  private failure: unknown;
  private readonly publisher: TaskPublisher;
  private readonly batcher: Batcher;
  private readonly results: ResultsReader;

  private constructor(private readonly options: RabbitTransportOptions) {
    this.resultsQueue = resultsQueue(options.run);
    this.sizeClasses = options.classes ?? [];
    const classes = options.classes?.length ? `, size classes ${options.classes.join(',')}` : '';
    this.description = `RabbitMQ at ${brokerAddress(options.broker.url)}, queue ${options.queue}${classes}`;
    this.publisher = new TaskPublisher({
      queue: options.queue,
      window: options.window,
      signingKey: options.signingKey,
      stamp: options.stamp,
      log: options.log,
      confirmed: (tasks) => this.listener?.queued(tasks),
      fail: (error) => this.fail(error),
      unroutable: async () => {
        const model = this.model;
        if (model) await this.redeclare(model);
      },
    });
    this.batcher = new Batcher({
      publish: (tasks) => this.publisher.submit(tasks, () => this.failure),
      // Results left for `tasker collect` are never read here: nothing would size a batch.
      maxSize: options.leaveResults ? 1 : options.batchSize,
      waiting: () =>
        this.view().then(
          (view) => view.ready,
          () => undefined,
        ),
      log: options.log,
    });
    this.results = new ResultsReader(
      {
        queue: this.resultsQueue,
        deliveryLimit: options.deliveryLimit,
        signingKey: options.signingKey,
        log: options.log,
        fail: (error) => this.fail(error),
        closing: () => this.state === 'closing',
        workdir: options.workdir,
        unbatch: async (tasks) => {
          for (const task of tasks) await this.publisher.submit([task], () => this.failure);
        },
      },
      () => this.listener,
    );
  }

  /** Connects and declares the topology and the run's results queue; InfraError (exit 3) if it cannot. */
  static async open(options: RabbitTransportOptions): Promise<RabbitTransport> {
    const transport = new RabbitTransport(options);
    transport.broker = await Broker.connect(options.broker, options.log, [
      (model) => transport.onConnect(model),
    ]);
    transport.broker.onGiveUp((error) => transport.fail(error));
    return transport;
  }

  listen(given: TransportListener): void {
    // Results shape the batches: each result's duration is seen on its way to the dispatcher.
    const listener: TransportListener = {
      ...given,
      result: (result, task) => {
        this.batcher.observe(result);
        return given.result(result, task);
      },
    };
    this.listener = listener;
    if (this.failure) listener.fatal(this.failure);
    if (!this.options.leaveResults && this.options.purpose !== 'control' && !this.consuming) {
      this.consuming = true;
      const model = this.model;
      if (model) void this.consumeOn(model).catch((error: unknown) => this.fail(error));
    }
  }

  expect(phase: string, meanMs: number, count: number): void {
    this.batcher.expect(phase, meanMs, count);
  }

  async submit(task: TaskMessage): Promise<void> {
    if (this.options.purpose === 'control')
      throw new Error('a RabbitTransport opened for control takes no tasks');
    await this.batcher.add(task);
  }

  /**
   * An interrupted tasker publishes nothing more and leaves its published tasks to the workers:
   * their results wait in the queue.
   */
  async cancel(): Promise<void> {
    this.publisher.stop('interrupted');
    this.batcher.wake();
  }

  /** Waits (a while) for outstanding confirms, then closes the connection. */
  async close(): Promise<void> {
    await this.batcher.flush().catch(() => {});
    await this.publisher.settle(10_000);
    this.state = 'closing';
    await this.broker?.close();
  }

  /** Publishes a `cancel` of the run on the control exchange, for the workers. */
  async announceCancel(): Promise<boolean> {
    const model = this.model;
    if (!model) return false;
    const channel = await model.createChannel();
    try {
      await sendControl(channel, cancelMessage(this.options.run));
    } finally {
      await channel.close().catch(() => {});
    }
    return true;
  }

  /**
   * A finished run needs its results queue no more, nor does a cancelled one (workers drop the
   * tasks of a run whose queue is gone); an interrupted one keeps it for the resume, and a run
   * that leaves its results for `tasker collect` keeps it unless cancelled.
   */
  async finish(end: RunEnd): Promise<void> {
    if (end === 'cancelled') {
      await this.deleteResultsQueue({ force: true });
    } else if (end === 'finished' && !this.options.leaveResults) {
      // Every phase that ran passed its barrier: each task published has a final outcome in
      // the ledger, and no attempt is published after that. Whatever is left is of an attempt
      // recorded already (kept in memory for a million tasks, this check would cost ~25 MB).
      const left = await this.deleteResultsQueue({ redundant: () => true });
      if (left > 0)
        this.options.log.warn(
          `kept results queue \`${this.resultsQueue}\`: ${left} message(s) still in it`,
        );
    }
  }

  /**
   * The task queue (or the queue of size class `sizeClass`) as the broker sees it. A queue that
   * is gone (`rabbitmqctl delete_queue`) is declared again, so that what is published again has
   * somewhere to go and the workers, who wait for it, take tasks again.
   */
  async view(sizeClass?: string): Promise<QueueView> {
    const model = this.model;
    if (!model) throw new Error('not connected');
    const queue = classQueue(this.options.queue, sizeClass);
    const channel = await model.createChannel();
    channel.on('error', () => {});
    try {
      const { messageCount, consumerCount } = await channel.checkQueue(queue);
      // In tasks: a batch waiting in the queue is as many tasks as it holds. (What waits in a
      // class queue went there one to a message: a task the OOM killer killed.)
      const ready =
        queue === this.options.queue ? this.publisher.tasksIn(messageCount) : messageCount;
      return { queue, ready, consumers: consumerCount, recreated: false };
    } catch (error) {
      if (!/NOT_FOUND/.test(String((error as Error).message))) throw error;
    } finally {
      await channel.close().catch(() => {});
    }
    await this.redeclare(model);
    return { queue, ready: 0, consumers: 0, recreated: true };
  }

  /** Declares the topology again (the task queue was deleted under the run). */
  private async redeclare(model: ChannelModel): Promise<void> {
    await this.declare(model, { results: false });
    this.options.log.warn(
      `task queue \`${this.options.queue}\` was gone (deleted?); declared it again`,
    );
  }

  /** Declares the shared topology and, with `results`, the run's results queue. */
  private async declare(model: ChannelModel, what: { readonly results: boolean }): Promise<void> {
    const setup = await model.createChannel();
    setup.on('error', () => {});
    try {
      await declareTopology(
        setup,
        this.options.queue,
        this.options.deliveryLimit,
        this.options.classes,
        queueTimeout(brokerVersionOf(model), this.options.consumerTimeoutMs ?? 0),
      );
      if (what.results) await declareResultsQueue(setup, this.options.run);
    } finally {
      await setup.close().catch(() => {});
    }
  }

  /** Messages ready in the run's results queue (0 when it cannot be checked). */
  async waiting(): Promise<number> {
    return this.model ? await resultsWaiting(this.model, this.resultsQueue) : 0;
  }

  /**
   * Stops reading results and deletes the run's results queue if nothing the run lacks is
   * left in it (see `deleteResultsQueue` of resultsQueue.ts); returns how many messages keep
   * it alive otherwise, -1 when it could not be checked.
   */
  async deleteResultsQueue(options: DeleteOptions = {}): Promise<number> {
    const model = this.model;
    if (!model) return -1;
    this.state = 'closing';
    await this.results.stop();
    return deleteResultsQueue(model, this.resultsQueue, {
      ...options,
      signingKey: this.options.signingKey,
      log: this.options.log,
    });
  }

  private async onConnect(model: ChannelModel): Promise<void> {
    // Forget a connection as soon as it closes: nothing may open channels on it afterwards.
    model.on('close', () => {
      if (this.model === model) this.model = undefined;
    });
    if (this.options.purpose === 'control') {
      this.model = model;
      return;
    }
    await this.declare(model, { results: true });
    const onCancel = this.options.onCancel;
    if (onCancel) {
      // Hears `tasker cancel` for this run, given from anywhere that reaches the broker.
      await listenToControl(model, {
        message: (message) => {
          if (message.action === 'cancel' && message.run === this.options.run) onCancel();
        },
      });
    }
    this.model = model;
    await this.publisher.attach(
      model,
      () => this.model === model,
      () => this.state === 'closing',
    );
    if (this.consuming) await this.consumeOn(model);
  }

  private consumeOn(model: ChannelModel): Promise<void> {
    return this.results.consume(model, () => this.model === model);
  }

  private fail(error: unknown): void {
    if (this.failure) return;
    this.failure = error;
    this.publisher.stop('failed');
    this.batcher.wake();
    this.listener?.fatal(error);
  }
}
