import type { ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { InfraError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { TaskMessage } from '../../shared/protocol.js';
import { sign } from '../../shared/signing.js';
import { encodeTask } from '../../shared/wire.js';

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
  /** Most tasks published and not yet confirmed by the broker. */
  readonly window: number;
  /** Signs every task (HMAC-SHA256) when set. */
  readonly signingKey?: string | undefined;
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

/**
 * Publishes tasks to the task queue through a confirm channel: mandatory, a bounded window of
 * unconfirmed messages, waiting on `drain`. Survives a broker restart: a task whose confirm was
 * lost with its channel is published again on the next one (the duplicate is dropped by task
 * id and attempt).
 */
export class TaskPublisher {
  private channel: ConfirmChannel | undefined;
  /** Published, waiting for the broker's confirm. */
  private readonly unconfirmed = new Set<TaskMessage>();
  /** Lost with a channel before their confirm: published again on the next channel. */
  private republish: TaskMessage[] = [];
  /** Confirmed since the last report. */
  private confirmed: TaskMessage[] = [];
  private readonly returned = new Set<string>();
  /**
   * How often each task now being published again was returned. Per task, not in a row: a
   * queue deleted in the middle of a window of a thousand tasks returns them all at once.
   */
  private readonly returns = new Map<TaskMessage, number>();
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
    for (const task of again) this.publish(channel, task);
    this.wake();
  }

  /**
   * Publishes one task; resolves when the window has room for more. Interrupted while waiting
   * (for a window slot, or for the broker to come back), the task stays unpublished and
   * unrecorded, and a resume publishes it. Throws what `failure()` holds once publishing failed.
   */
  async submit(task: TaskMessage, failure: () => unknown): Promise<void> {
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
      if (this.channel !== channel || String((error as Error).message) === 'channel closed') {
        this.republish.push(task);
      } else {
        this.options.fail(
          new InfraError(
            'PUBLISH_NACKED',
            `the broker refused task ${task.task} of phase ${task.phase} (nack)`,
          ),
        );
      }
    } else if (this.returned.delete(task.task)) {
      const returns = (this.returns.get(task) ?? 0) + 1;
      this.returns.set(task, returns);
      if (returns > MAX_RETURNS) {
        this.options.fail(
          new InfraError(
            'PUBLISH_UNROUTABLE',
            `task queue \`${this.options.queue}\` did not take task ${task.task}: it was returned unroutable`,
          ),
        );
      } else {
        this.againAfterRedeclare(task);
      }
    } else {
      this.returns.delete(task);
      this.window = Math.min(this.options.window, this.window + 1);
      this.confirmed.push(task);
      if (this.confirmed.length === 1) setImmediate(() => this.reportConfirmed());
    }
    this.wake();
  }

  /** Publishes `task` again once the task queue is declared again (one declaration at a time). */
  private againAfterRedeclare(task: TaskMessage): void {
    this.republish.push(task);
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
