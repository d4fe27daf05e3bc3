import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { Broker, type BrokerOptions, brokerAddress } from '../../shared/broker.js';
import { cancelMessage, listenToControl, sendControl } from '../../shared/control.js';
import { InfraError } from '../../shared/errors.js';
import { failedResult } from '../../shared/failedResult.js';
import type { Logger } from '../../shared/logger.js';
import type { TaskMessage, TaskResult } from '../../shared/protocol.js';
import { sign } from '../../shared/signing.js';
import { declareResultsQueue, declareTopology, resultsQueue } from '../../shared/topology.js';
import { decodeResultsMessage, encodeTask, type ResultsEvent } from '../../shared/wire.js';
import { type DeleteOptions, deleteResultsQueue, resultsWaiting } from './resultsQueue.js';
import type { RunEnd, Transport, TransportListener } from './transport.js';

export interface RabbitTransportOptions {
  readonly broker: BrokerOptions;
  readonly run: string;
  /** The task queue. */
  readonly queue: string;
  readonly deliveryLimit: number;
  /** Most tasks published and not yet confirmed by the broker. */
  readonly window: number;
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
}

/** Results taken from the run's queue before their ledger lines are written and acked. */
const RESULTS_PREFETCH = 500;

/**
 * Unconfirmed tasks allowed when publishing starts, growing by one per confirm up to the
 * window (doubling every round trip, as TCP's slow start). A quorum queue delivers a message
 * only once the write that holds it is on disk: a first burst of a thousand tasks kept the
 * first of them from the workers for 20-50 ms, a first burst of 16 for 2-3 ms. The rate of a
 * long publish does not change.
 */
const FIRST_WINDOW = 16;

/**
 * The RabbitMQ transport of a tasker: publishes tasks to the task queue through a confirm
 * channel (mandatory, a bounded window of unconfirmed messages, waiting on `drain`), and
 * consumes the run's own results queue, acknowledging each result only once the ledger has
 * it. Survives a broker restart: channels come back on reconnect, unconfirmed tasks are
 * published again (duplicates are dropped by task id and attempt), and results wait in their
 * durable queue.
 */
export class RabbitTransport implements Transport {
  readonly mode = 'rabbitmq';
  readonly description: string;
  readonly resultsQueue: string;
  private broker: Broker | undefined;
  private model: ChannelModel | undefined;
  private publisher: ConfirmChannel | undefined;
  private consumer: Channel | undefined;
  private listener: TransportListener | undefined;
  private consuming = false;
  private closing = false;
  private failure: unknown;
  /** Published, waiting for the broker's confirm. */
  private readonly unconfirmed = new Set<TaskMessage>();
  /** Lost with a channel before their confirm: published again on the next channel. */
  private republish: TaskMessage[] = [];
  /** Confirmed since the last `queued` report. */
  private confirmed: TaskMessage[] = [];
  private returned = new Set<string>();
  /** Per channel, results in delivery order, acknowledged once their ledger lines are written. */
  private readonly unacked = new WeakMap<
    Channel,
    { readonly message: ConsumeMessage; ready: boolean }[]
  >();
  private waiters: (() => void)[] = [];
  private interrupted = false;
  /** The window now: FIRST_WINDOW after an idle moment, up to `options.window`. */
  private window = FIRST_WINDOW;

  private constructor(private readonly options: RabbitTransportOptions) {
    this.resultsQueue = resultsQueue(options.run);
    this.description = `RabbitMQ at ${brokerAddress(options.broker.url)}, queue ${options.queue}`;
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

  listen(listener: TransportListener): void {
    this.listener = listener;
    if (this.failure) listener.fatal(this.failure);
    if (!this.options.leaveResults && this.options.purpose !== 'control' && !this.consuming) {
      this.consuming = true;
      if (this.model) void this.consume(this.model).catch((error: unknown) => this.fail(error));
    }
  }

  async submit(task: TaskMessage): Promise<void> {
    if (this.options.purpose === 'control')
      throw new Error('a RabbitTransport opened for control takes no tasks');
    // Nothing outstanding: a phase starts (or a serial step): ramp up again from the start.
    if (this.unconfirmed.size + this.republish.length === 0)
      this.window = Math.min(FIRST_WINDOW, this.options.window);
    while (
      !this.failure &&
      !this.interrupted &&
      (this.unconfirmed.size + this.republish.length >= this.window || !this.publisher)
    ) {
      await this.wait();
    }
    if (this.failure) throw this.failure;
    // Interrupted while waiting (for a window slot, or for the broker to come back): the task
    // stays unpublished and unrecorded, and a resume publishes it.
    if (this.interrupted) return;
    const channel = this.publisher as ConfirmChannel;
    if (!this.publish(channel, task)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          channel.off('drain', done);
          channel.off('close', done);
          resolve();
        };
        channel.on('drain', done);
        channel.on('close', done);
      });
    }
  }

  /**
   * An interrupted tasker publishes nothing more and leaves its published tasks to the workers:
   * their results wait in the queue.
   */
  async cancel(): Promise<void> {
    this.interrupted = true;
    this.wake();
  }

  /** Waits (a while) for outstanding confirms, then closes the connection. */
  async close(): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (
      !this.failure &&
      !(this.interrupted && !this.publisher) &&
      this.unconfirmed.size + this.republish.length > 0 &&
      Date.now() < deadline
    ) {
      await Promise.race([this.wait(), new Promise((resolve) => setTimeout(resolve, 200))]);
    }
    this.closing = true;
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
    this.closing = true;
    await this.consumer?.close().catch(() => {});
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
    const setup = await model.createChannel();
    setup.on('error', () => {});
    await declareTopology(setup, this.options.queue, this.options.deliveryLimit);
    await declareResultsQueue(setup, this.options.run);
    await setup.close();
    const publisher = await model.createConfirmChannel();
    let refused: Error | undefined;
    publisher.on('error', (error: Error) => {
      refused = error;
    });
    publisher.on('return', (message: ConsumeMessage) =>
      this.returned.add(String(message.properties.messageId)),
    );
    publisher.on('close', () => {
      if (this.publisher === publisher) this.publisher = undefined;
      // The connection lives on but the broker closed the channel for something it refused
      // (permissions, a missing exchange): publishing again would be refused the same way.
      setTimeout(() => {
        if (this.closing || this.model !== model || this.publisher || !refused) return;
        this.fail(
          new InfraError(
            'PUBLISH_REFUSED',
            `the broker refused to take tasks for \`${this.options.queue}\`: ${refused.message}`,
          ),
        );
      }, 1000);
    });
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
    this.publisher = publisher;
    if (this.consuming) await this.consume(model);
    const again = this.republish;
    this.republish = [];
    if (again.length > 0)
      this.options.log.info(
        `publishing ${again.length} unconfirmed tasks again after reconnecting`,
      );
    for (const task of again) this.publish(publisher, task);
    this.wake();
  }

  private publish(channel: ConfirmChannel, task: TaskMessage): boolean {
    const encoded = encodeTask(task);
    const { content } = encoded;
    const options = this.options.signingKey
      ? sign(this.options.signingKey, content, encoded.options)
      : encoded.options;
    this.unconfirmed.add(task);
    try {
      return channel.publish('', this.options.queue, content, options, (error) =>
        this.onConfirm(task, channel, error),
      );
    } catch {
      // The channel closed under us: publish again on the next one.
      this.unconfirmed.delete(task);
      this.republish.push(task);
      return true;
    }
  }

  private onConfirm(task: TaskMessage, channel: ConfirmChannel, error: unknown): void {
    if (!this.unconfirmed.delete(task)) return;
    if (error) {
      if (this.publisher !== channel || String((error as Error).message) === 'channel closed') {
        this.republish.push(task);
      } else {
        this.fail(
          new InfraError(
            'PUBLISH_NACKED',
            `the broker refused task ${task.task} of phase ${task.phase} (nack)`,
          ),
        );
      }
    } else if (this.returned.delete(task.task)) {
      this.fail(
        new InfraError(
          'PUBLISH_UNROUTABLE',
          `task queue \`${this.options.queue}\` did not take task ${task.task}: it was returned unroutable`,
        ),
      );
    } else {
      this.window = Math.min(this.options.window, this.window + 1);
      this.confirmed.push(task);
      if (this.confirmed.length === 1) setImmediate(() => this.reportQueued());
    }
    this.wake();
  }

  private reportQueued(): void {
    const batch = this.confirmed;
    this.confirmed = [];
    if (batch.length > 0) this.listener?.queued(batch);
  }

  private async consume(model: ChannelModel): Promise<void> {
    const channel = await model.createChannel();
    channel.on('error', (error: Error) =>
      this.options.log.debug({ err: error }, 'results channel error'),
    );
    channel.on('close', () => {
      if (this.closing || this.model !== model) return;
      // The connection is alive but this channel is gone (it happens when a handler fails):
      // take the queue up again on a fresh channel.
      setTimeout(() => {
        if (!this.closing && this.model === model) {
          void this.consume(model).catch((error: unknown) =>
            this.options.log.debug({ err: error }, 'could not consume again'),
          );
        }
      }, 500);
    });
    await channel.prefetch(RESULTS_PREFETCH);
    this.consumer = channel;
    this.unacked.set(channel, []);
    await channel.consume(this.resultsQueue, (message) => this.onMessage(channel, message), {
      noAck: false,
    });
  }

  private onMessage(channel: Channel, message: ConsumeMessage | null): void {
    if (!message) {
      if (!this.closing)
        this.fail(
          new InfraError(
            'RESULTS_QUEUE_GONE',
            `results queue \`${this.resultsQueue}\` was deleted while the run was going on`,
          ),
        );
      return;
    }
    const listener = this.listener;
    if (!listener) return;
    const event = decodeResultsMessage(message, this.options.signingKey);
    let done: Promise<void> | undefined;
    switch (event.kind) {
      case 'result':
        done = Promise.resolve(listener.result(event.result));
        break;
      case 'started':
        listener.started(
          event.notice.task,
          event.notice.attempt,
          event.notice.worker,
          new Date(event.notice.startedAt),
        );
        break;
      case 'dead':
        done = Promise.resolve(
          listener.result(deadLetterResult(event, this.options.deliveryLimit)),
        );
        break;
      case 'junk':
        this.options.log.warn(`dropped a message on \`${this.resultsQueue}\`: ${event.reason}`);
        break;
    }
    const entry = { message, ready: false };
    this.unacked.get(channel)?.push(entry);
    Promise.resolve(done).then(
      () => {
        entry.ready = true;
        this.ackReady(channel);
      },
      (error: unknown) => this.fail(error),
    );
  }

  /**
   * Acknowledges, in one frame, every message up to the last one whose ledger line is written
   * (they are written in delivery order): one ack per ledger batch instead of one per result.
   */
  private ackReady(channel: Channel): void {
    const queue = this.unacked.get(channel) ?? [];
    let last: ConsumeMessage | undefined;
    while (queue[0]?.ready) last = queue.shift()?.message;
    if (!last) return;
    try {
      channel.ack(last, true);
    } catch {
      // The channel is gone; its messages come back and are dropped as duplicates.
    }
  }

  private fail(error: unknown): void {
    if (this.failure) return;
    this.failure = error;
    this.listener?.fatal(error);
    this.wake();
  }

  private wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** A task the broker gave up on, as a failed result: final, never retried. */
function deadLetterResult(
  event: Extract<ResultsEvent, { kind: 'dead' }>,
  deliveryLimit: number,
): TaskResult {
  const now = new Date().toISOString();
  const reason =
    event.reason === 'delivery_limit'
      ? `lost: delivered ${deliveryLimit + 1} times and never finished (each time the worker died or lost the task; x-delivery-limit ${deliveryLimit})`
      : event.reason === 'rejected'
        ? 'rejected by a worker (see the worker log: bad message or signature)'
        : `dead-lettered by the broker (${event.reason})`;
  return failedResult(event.task, {
    failure: event.reason === 'rejected' ? 'rejected' : 'lost',
    reason,
    worker: '',
    host: '',
    startedAt: now,
    finishedAt: now,
  });
}
