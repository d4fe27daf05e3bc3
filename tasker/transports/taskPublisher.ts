import type { ChannelModel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import { InfraError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { TaskMessage } from '../../shared/protocol.js';
import { sign } from '../../shared/signing.js';
import { classQueue } from '../../shared/topology.js';
import { encodeTasks } from '../../shared/wire.js';

/**
 * Unconfirmed tasks allowed when publishing starts, growing by one per confirm up to the
 * window (doubling every round trip, as TCP's slow start). A quorum queue delivers a message
 * only once the write that holds it is on disk: a first burst of a thousand tasks kept the
 * first of them from the workers for 20-50 ms, a first burst of 16 for 2-3 ms. The rate of a
 * long publish does not change.
 */
const FIRST_WINDOW = 16;

export interface TaskPublisherOptions {
  /** The task queue. */
  readonly queue: string;
  /** Most messages (a task, or a batch of them) published and not yet confirmed by the broker. */
  readonly window: number;
  /** Signs every task (HMAC-SHA256) when set. */
  readonly signingKey?: string | undefined;
  /** The run's stamp, a header of every message (none: no header). */
  readonly stamp?: (() => string | undefined) | undefined;
  readonly log: Logger;
  /** Tasks the broker confirmed it holds, in batches. */
  readonly confirmed: (tasks: readonly TaskMessage[]) => void;
  /** The broker refused tasks in a way publishing again cannot fix. */
  readonly fail: (error: InfraError) => void;
  /**
   * The broker returned a task unroutable: the task queue is gone (deleted under the run).
   * Declares it again; the task is published again after.
   */
  readonly unroutable: () => Promise<void>;
}

/**
 * A task returned unroutable this many times (each time published again after the task queue
 * was declared again) fails the run: the queue will not stay.
 */
const MAX_RETURNS = 3;

/** One message of tasks: a task, or a batch of them (all of one run). */
interface Parcel {
  readonly tasks: readonly TaskMessage[];
  /** Its message id, as the broker returns it. */
  readonly id: string;
  readonly content: Buffer;
  readonly options: Options.Publish;
}

/**
 * Publishes messages of tasks (one task, or a batch) to the task queue through a confirm
 * channel: mandatory, a bounded window of unconfirmed messages, waiting on `drain`. Survives a
 * broker restart: a message whose confirm was lost with its channel is published again on the
 * next one (the duplicate is dropped by task id and attempt).
 */
export class TaskPublisher {
  private channel: ConfirmChannel | undefined;
  /** Published, waiting for the broker's confirm. */
  private readonly unconfirmed = new Set<Parcel>();
  /** Lost with a channel before their confirm: published again on the next channel. */
  private republish: Parcel[] = [];
  /** Confirmed since the last report. */
  private confirmed: TaskMessage[] = [];
  private readonly returned = new Set<string>();
  /**
   * How often each message now being published again was returned. Per message, not in a row: a
   * queue deleted in the middle of a window of a thousand messages returns them all at once.
   */
  private readonly returns = new Map<Parcel, number>();
  /** How many tasks each confirmed message held, in the order confirmed: runs of one size. */
  private readonly sizes: [size: number, count: number][] = [];
  private redeclaring: Promise<void> | undefined;
  private waiters: (() => void)[] = [];
  /** The window now: FIRST_WINDOW after an idle moment, up to `options.window`. */
  private window = FIRST_WINDOW;
  private stopped: 'no' | 'interrupted' | 'failed' = 'no';

  constructor(private readonly options: TaskPublisherOptions) {}

  /** Tasks published and not confirmed yet (including those to publish again). */
  get outstanding(): number {
    return this.unconfirmed.size + this.republish.length;
  }

  /**
   * Opens the confirm channel on a (new) connection and publishes again what was lost with the
   * last one. `isCurrent` and `closing` tell whether a channel closed by the broker is news.
   */
  async attach(
    model: ChannelModel,
    isCurrent: () => boolean,
    closing: () => boolean,
  ): Promise<void> {
    const channel = await model.createConfirmChannel();
    let refused: Error | undefined;
    channel.on('error', (error: Error) => {
      refused = error;
    });
    channel.on('return', (message: ConsumeMessage) =>
      this.returned.add(String(message.properties.messageId)),
    );
    channel.on('close', () => {
      if (this.channel === channel) this.channel = undefined;
      // The connection lives on but the broker closed the channel for something it refused
      // (permissions, a missing exchange): publishing again would be refused the same way.
      setTimeout(() => {
        if (closing() || !isCurrent() || this.channel || !refused) return;
        this.options.fail(
          new InfraError(
            'PUBLISH_REFUSED',
            `the broker refused to take tasks for \`${this.options.queue}\`: ${refused.message}`,
          ),
        );
      }, 1000);
    });
    this.channel = channel;
    const again = this.republish;
    this.republish = [];
    if (again.length > 0)
      this.options.log.info(
        `publishing ${again.length} unconfirmed tasks again after reconnecting`,
      );
    for (const parcel of again) this.publish(channel, parcel);
    this.wake();
  }

  /**
   * Publishes one message of tasks (one, or a batch of one run); resolves when the window has
   * room for more. Interrupted while waiting (for a window slot, or for the broker to come
   * back), the tasks stay unpublished and unrecorded, and a resume publishes them. Throws what
   * `failure()` holds once publishing failed.
   */
  async submit(tasks: readonly TaskMessage[], failure: () => unknown): Promise<void> {
    // Nothing outstanding: a phase starts (or a serial step): ramp up again from the start.
    if (this.outstanding === 0) this.window = Math.min(FIRST_WINDOW, this.options.window);
    while (
      !failure() &&
      this.stopped === 'no' &&
      (this.outstanding >= this.window || !this.channel)
    ) {
      await this.wait();
    }
    const failed = failure();
    if (failed) throw failed;
    if (this.stopped !== 'no') return;
    const channel = this.channel as ConfirmChannel;
    if (!this.publish(channel, this.parcel(tasks))) {
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

  /** Publishes nothing more; those waiting to publish return. */
  stop(why: 'interrupted' | 'failed'): void {
    this.stopped = why;
    this.wake();
  }

  /**
   * Waits (at most `ms`) for outstanding confirms. An interrupted publisher whose channel is
   * gone has nothing left to wait for.
   */
  async settle(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (
      this.stopped !== 'failed' &&
      !(this.stopped === 'interrupted' && !this.channel) &&
      this.outstanding > 0 &&
      Date.now() < deadline
    ) {
      await Promise.race([this.wait(), new Promise((resolve) => setTimeout(resolve, 200))]);
    }
  }

  /**
   * How many tasks the youngest `messages` confirmed messages hold: what `messages` ready in the
   * task queue stand for, when this publisher is the only one (the queue hands out its oldest
   * first).
   */
  tasksIn(messages: number): number {
    let tasks = 0;
    let left = messages;
    for (let i = this.sizes.length - 1; i >= 0 && left > 0; i--) {
      const [size, count] = this.sizes[i] as [number, number];
      const taken = Math.min(count, left);
      tasks += taken * size;
      left -= taken;
    }
    // More ready than this publisher confirmed: someone else's, counted as one task each.
    return tasks + left;
  }

  private parcel(tasks: readonly TaskMessage[]): Parcel {
    const encoded = encodeTasks(tasks, this.options.stamp?.());
    const { content } = encoded;
    const options = this.options.signingKey
      ? sign(this.options.signingKey, content, encoded.options)
      : encoded.options;
    return { tasks, id: String(options.messageId), content, options };
  }

  private publish(channel: ConfirmChannel, parcel: Parcel): boolean {
    this.unconfirmed.add(parcel);
    try {
      // A task of a size class goes to its class's queue (a batch is of one class).
      const queue = classQueue(this.options.queue, parcel.tasks[0]?.class);
      return channel.publish('', queue, parcel.content, parcel.options, (error) =>
        this.onConfirm(parcel, channel, error),
      );
    } catch {
      // The channel closed under us: publish again on the next one.
      this.unconfirmed.delete(parcel);
      this.republish.push(parcel);
      return true;
    }
  }

  private onConfirm(parcel: Parcel, channel: ConfirmChannel, error: unknown): void {
    if (!this.unconfirmed.delete(parcel)) return;
    const first = parcel.tasks[0] as TaskMessage;
    const what =
      parcel.tasks.length > 1
        ? `a batch of ${parcel.tasks.length} tasks of phase ${first.phase}`
        : `task ${first.task} of phase ${first.phase}`;
    if (error) {
      if (this.channel !== channel || String((error as Error).message) === 'channel closed') {
        this.republish.push(parcel);
      } else {
        this.options.fail(new InfraError('PUBLISH_NACKED', `the broker refused ${what} (nack)`));
      }
    } else if (this.returned.delete(parcel.id)) {
      const returns = (this.returns.get(parcel) ?? 0) + 1;
      this.returns.set(parcel, returns);
      if (returns > MAX_RETURNS) {
        this.options.fail(
          new InfraError(
            'PUBLISH_UNROUTABLE',
            `task queue \`${this.options.queue}\` did not take ${what}: it was returned unroutable`,
          ),
        );
      } else {
        this.againAfterRedeclare(parcel);
      }
    } else {
      this.returns.delete(parcel);
      this.window = Math.min(this.options.window, this.window + 1);
      // Only the task queue's messages size what waits there (`tasksIn`).
      if (first.class === undefined) this.noteSize(parcel.tasks.length);
      this.confirmed.push(...parcel.tasks);
      if (this.confirmed.length === parcel.tasks.length) setImmediate(() => this.reportConfirmed());
    }
    this.wake();
  }

  private noteSize(size: number): void {
    const last = this.sizes[this.sizes.length - 1];
    if (last && last[0] === size) last[1]++;
    else this.sizes.push([size, 1]);
  }

  /** Publishes `parcel` again once the task queue is declared again (one declaration at a time). */
  private againAfterRedeclare(parcel: Parcel): void {
    this.republish.push(parcel);
    this.redeclaring ??= this.options
      .unroutable()
      .catch((error: unknown) =>
        this.options.log.warn(`could not declare the task queue again: ${String(error)}`),
      )
      .finally(() => {
        this.redeclaring = undefined;
        const channel = this.channel;
        if (!channel) return; // the next channel publishes them
        const again = this.republish;
        this.republish = [];
        for (const next of again) this.publish(channel, next);
      });
  }

  private reportConfirmed(): void {
    const batch = this.confirmed;
    this.confirmed = [];
    if (batch.length > 0) this.options.confirmed(batch);
  }

  private wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Wakes whoever waits to publish (a confirm came, the broker is back, or it failed). */
  wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}
