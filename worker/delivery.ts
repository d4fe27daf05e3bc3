import type { Channel, Message } from 'amqplib';
import { describeSystemError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { TaskMessage, TaskResult } from '../shared/protocol.js';
import type { ResultPublisher } from './publisher.js';
import type { Recent } from './recent.js';

/** A message of the task queue with the worker: one task, or a batch of them. */
export interface Delivery {
  readonly message: Message;
  readonly channel: Channel;
  readonly replyTo: string;
  /** Its jobs not through `ended` yet; it is settled when none is left. */
  open: number;
  /** Results of its jobs that ended, published together once all have. */
  readonly results: TaskResult[];
  /** A job of it was stopped by our shutdown, or never started: it goes back to the queue. */
  handBack: boolean;
  /** The broker took it back while a task of it ran (consumer_timeout). */
  lost: boolean;
  /** When it came, in ms since the epoch, and whether a job of it started. */
  readonly at: number;
  started: boolean;
  /** Resolves once it is settled (results published, acknowledged or handed back). */
  readonly settled: Promise<void>;
  readonly settle: () => void;
}

/** One task a slot runs (or will), and the delivery it came in. */
export interface Job {
  readonly task: TaskMessage & { replyTo: string };
  readonly delivery: Delivery;
  /** Why the broker took it back while it ran (consumer_timeout), when it did. */
  lost?: string;
  /** When the task started, in ms since the epoch. */
  startedAt?: number;
  /** Its in-flight marker, removed once the task ended. */
  marker?: string | undefined;
  /** Tells the tasker the task started, if it runs long enough. */
  notice?: NodeJS.Timeout;
}

/** A delivery just come, with `open` tasks to run. */
export function newDelivery(
  message: Message,
  channel: Channel,
  replyTo: string,
  open: number,
): Delivery {
  let settle = () => {};
  const settled = new Promise<void>((resolve) => {
    settle = resolve;
  });
  return {
    message,
    channel,
    replyTo,
    open,
    results: [],
    handBack: false,
    lost: false,
    at: Date.now(),
    started: false,
    settled,
    settle,
  };
}

/** Runs a channel operation that may find the channel closed; a closed channel needs nothing more. */
export function safely(operation: () => unknown): void {
  try {
    operation();
  } catch {
    // the channel is gone: the broker has requeued its deliveries
  }
}

/** What settling a delivery needs from the worker. */
export interface SettleOptions {
  readonly publisher: ResultPublisher;
  readonly recent: Recent;
  readonly log: Logger;
  /** Whether deliveries of `channel` are still acknowledged on it. */
  readonly isCurrent: (channel: Channel) => boolean;
  /** The delivery is settled: acknowledged, handed back or refused. */
  readonly released?: ((channel: Channel, message: Message) => void) | undefined;
}

/**
 * Publishes the results of a delivery's tasks in one message with a confirm, then
 * acknowledges the delivery, or hands it back to the queue when a task of it did not end
 * here (a batch of which some ran runs again elsewhere, whole: the tasker drops the results
 * it has already).
 */
export async function settleDelivery(delivery: Delivery, options: SettleOptions): Promise<void> {
  const { publisher, recent, isCurrent, log } = options;
  const { message, channel, results } = delivery;
  try {
    if (results.length > 0 && (await publisher.results(results, delivery.replyTo)))
      for (const result of results) recent.rememberResult(result);
  } catch (error) {
    log.error({ err: error }, `could not publish results: ${describeSystemError(error)}`);
    delivery.handBack = true;
  }
  if (!isCurrent(channel) || delivery.lost) {
    // The channel this delivery came on is gone: the broker gave it back to the queue, and
    // whoever gets it next sees its results are already in (the tasker drops the duplicate).
    if (results.length > 0)
      log.info(
        'the broker took a delivery back while its tasks ran; their results are published all the same',
      );
  } else if (delivery.handBack) {
    // nack does not count toward the delivery limit on RabbitMQ 4.3+; before, it does.
    safely(() => channel.nack(message, false, true));
  } else {
    safely(() => channel.ack(message));
  }
  options.released?.(channel, message);
}
