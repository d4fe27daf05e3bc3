import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { InfraError } from '../../shared/errors.js';
import { failedResult } from '../../shared/failedResult.js';
import type { Logger } from '../../shared/logger.js';
import { isKnownFailure, type TaskMessage, type TaskResult } from '../../shared/protocol.js';
import type { ResultReading } from '../../shared/readResult.js';
import { decodeResultsMessage, type ResultsEvent } from '../../shared/wire.js';
import { Strays } from './strays.js';
import type { TransportListener } from './transport.js';

/** Results taken from the run's queue before their ledger lines are written and acked. */
const RESULTS_PREFETCH = 500;

export interface ResultsReaderOptions {
  /** The run's results queue. */
  readonly queue: string;
  /** The task queue's `x-delivery-limit`, for the reason of a task the broker gave up on. */
  readonly deliveryLimit: number;
  /** Dead-lettered tasks count only when signed with it, when set. */
  readonly signingKey?: string | undefined;
  readonly log: Logger;
  readonly fail: (error: unknown) => void;
  /** True once the transport is closing: a channel closed then is no news. */
  readonly closing: () => boolean;
  /**
   * A batch the broker gave up on (its delivery limit): one of its tasks may be what killed
   * the workers, so each is published again on its own, as the same attempt; resolves once
   * the broker has them.
   */
  readonly unbatch: (tasks: readonly TaskMessage[]) => Promise<void>;
  /** The run's working directory, for what is said of workers that do not share it. */
  readonly workdir?: string | undefined;
}

/**
 * Consumes the run's own results queue and tells the listener what arrives, acknowledging each
 * message only once the listener has it on disk (the ledger); a channel the broker closes is
 * taken up again.
 */
export class ResultsReader {
  private channel: Channel | undefined;
  /** Per channel, results in delivery order, acknowledged once their ledger lines are written. */
  private readonly unacked = new WeakMap<
    Channel,
    { readonly message: ConsumeMessage; ready: boolean }[]
  >();
  /** Failure classes this tasker does not know that results came with: each logged once. */
  private readonly foreignClasses = new Set<string>();
  /** Workers that gave the run's tasks back: they do not share its working directory. */
  private readonly strays: Strays;

  constructor(
    private readonly options: ResultsReaderOptions,
    private readonly listener: () => TransportListener | undefined,
  ) {
    this.strays = new Strays({
      workdir: options.workdir,
      deliveryLimit: options.deliveryLimit,
      log: options.log,
    });
  }

  /** Starts consuming on `model`; `isCurrent` tells whether that connection is still the one. */
  async consume(model: ChannelModel, isCurrent: () => boolean): Promise<void> {
    const channel = await model.createChannel();
    channel.on('error', (error: Error) =>
      this.options.log.debug({ err: error }, 'results channel error'),
    );
    channel.on('close', () => {
      if (this.options.closing() || !isCurrent()) return;
      // The connection is alive but this channel is gone (it happens when a handler fails):
      // take the queue up again on a fresh channel.
      setTimeout(() => {
        if (!this.options.closing() && isCurrent()) {
          void this.consume(model, isCurrent).catch((error: unknown) =>
            this.options.log.debug({ err: error }, 'could not consume again'),
          );
        }
      }, 500);
    });
    await channel.prefetch(RESULTS_PREFETCH);
    this.channel = channel;
    this.unacked.set(channel, []);
    await channel.consume(this.options.queue, (message) => this.onMessage(channel, message), {
      noAck: false,
    });
  }

  /** Stops reading (the transport is closing): what is not acknowledged goes back to the queue. */
  async stop(): Promise<void> {
    this.strays.close();
    await this.channel?.close().catch(() => {});
  }

  private onMessage(channel: Channel, message: ConsumeMessage | null): void {
    if (!message) {
      if (!this.options.closing())
        this.options.fail(
          new InfraError(
            'RESULTS_QUEUE_GONE',
            `results queue \`${this.options.queue}\` was deleted while the run was going on`,
          ),
        );
      return;
    }
    const listener = this.listener();
    if (!listener) return;
    const event = decodeResultsMessage(message, this.options.signingKey);
    let done: Promise<void> | undefined;
    switch (event.kind) {
      case 'result':
      case 'unreadable':
        done = this.take(event, listener);
        break;
      case 'results':
        done = Promise.all(event.readings.map((reading) => this.take(reading, listener))).then(
          () => {},
        );
        break;
      case 'started':
        this.strays.sharing();
        listener.started(
          event.notice.task,
          event.notice.attempt,
          event.notice.worker,
          new Date(event.notice.startedAt),
        );
        break;
      case 'lease':
        this.strays.sharing();
        listener.leased?.(
          event.lease.run,
          event.lease.tasks.map(([task, attempt]) => [task, attempt] as const),
          event.lease.worker,
          new Date(event.lease.at),
        );
        break;
      case 'given back':
        this.strays.givenBack(event.notice);
        break;
      case 'dead':
        done =
          event.tasks.length > 1 && event.reason === 'delivery_limit'
            ? this.unbatchDead(event.tasks)
            : Promise.all(event.tasks.map((task) => this.dead(task, event, listener))).then(
                () => {},
              );
        break;
      case 'junk':
        this.options.log.warn(`dropped a message on \`${this.options.queue}\`: ${event.reason}`);
        break;
    }
    const entry = { message, ready: false };
    this.unacked.get(channel)?.push(entry);
    Promise.resolve(done).then(
      () => {
        entry.ready = true;
        this.ackReady(channel);
      },
      (error: unknown) => this.options.fail(error),
    );
  }

  /** Hands a result, or an unreadable one, to the listener; junk is said and dropped. */
  private take(reading: ResultReading, listener: TransportListener): Promise<void> {
    if (reading.kind === 'junk') {
      this.options.log.warn(`dropped a result on \`${this.options.queue}\`: ${reading.reason}`);
      return Promise.resolve();
    }
    this.strays.sharing();
    this.strays.ended(reading.result.task, reading.result.attempt);
    if (reading.kind === 'unreadable')
      this.options.log.warn(
        { task: reading.result.task, attempt: reading.result.attempt },
        `${reading.reason}: taken as a failed attempt`,
      );
    else this.noteForeignClass(reading.result);
    return Promise.resolve(listener.result(reading.result));
  }

  /**
   * A task the broker dead-lettered: failed, final; or, if workers that cannot see the run
   * gave it back until its delivery limit ran out, published again as the same attempt.
   */
  private dead(
    task: TaskMessage,
    event: Extract<ResultsEvent, { kind: 'dead' }>,
    listener: TransportListener,
  ): Promise<void> {
    if (event.reason === 'delivery_limit' && this.strays.deadLettered(task)) {
      this.strays.republished([task]);
      return this.options.unbatch([task]);
    }
    return Promise.resolve(
      listener.result(deadLetterResult(task, event, this.options.deliveryLimit)),
    );
  }

  private unbatchDead(tasks: readonly TaskMessage[]): Promise<void> {
    this.strays.republished(tasks);
    this.options.log.warn(
      `the broker gave up on a batch of ${tasks.length} tasks (delivered ${this.options.deliveryLimit + 1} times, never finished): publishing each on its own, so that only a task that kills its worker fails`,
    );
    return this.options.unbatch(tasks);
  }

  /** Says once per class that a newer or foreign worker's failure class is kept as given. */
  private noteForeignClass(result: TaskResult): void {
    const failure = result.failure;
    if (failure === null || isKnownFailure(failure) || this.foreignClasses.has(failure)) return;
    this.foreignClasses.add(failure);
    this.options.log.warn(
      { task: result.task, attempt: result.attempt },
      `a result has failure class \`${failure}\`, which this tasker does not know: recorded as given, retried as \`exit\``,
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
}

/** A task the broker gave up on, as a failed result: final, never retried. */
function deadLetterResult(
  task: TaskMessage,
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
  return failedResult(task, {
    failure: event.reason === 'rejected' ? 'rejected' : 'lost',
    reason,
    worker: '',
    host: '',
    startedAt: now,
    finishedAt: now,
  });
}
