import type { Channel, ChannelModel, ConsumeMessage, Message, Options } from 'amqplib';
import { brokerVersionOf, consumeArguments } from '../shared/consumerTimeout.js';
import { SECOND } from '../shared/duration.js';
import type { Logger } from '../shared/logger.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The timeout a channel error reports when the broker took a channel's deliveries back because
 * one of them outlived `consumer_timeout` (RabbitMQ up to 4.2 closes the channel with
 * PRECONDITION_FAILED and this text). amqplib gives the broker's close reason only as text, and
 * RabbitMQ 3.10 sends no structured detail, so the text is all there is to go by: undefined
 * for any other error.
 */
export function consumerTimeoutOf(error: Error): number | undefined {
  const timeout =
    /delivery acknowledgement on channel \d+ timed out\. Timeout value used: (\d+) ms/.exec(
      error.message,
    );
  return timeout ? Number(timeout[1]) : undefined;
}

/** Whether the broker said a queue does not exist (404 NOT_FOUND). */
function isNotFound(error: unknown): boolean {
  return /NOT_FOUND/.test(String((error as Error | undefined)?.message));
}

/** Where a task consumer is: its one state value. */
export type ConsumerState =
  /** Not consuming: not connected yet, or between a lost channel and the next one. */
  | { readonly kind: 'off' }
  /** Connected, waiting for a tasker to declare the task queue. */
  | { readonly kind: 'waiting for queue' }
  /**
   * Taking deliveries on `channel`: through the consumer `tag` ('' while none consumes: every
   * delivery the worker may hold is with it), whose prefetch is `prefetch`. `held` counts the
   * deliveries of the channel not settled yet, by the consumer they came through.
   */
  | {
      readonly kind: 'consuming';
      readonly channel: Channel;
      tag: string;
      prefetch: number;
      readonly held: Map<string, number>;
    }
  /** Stopped for good; the channel stays open while running tasks' deliveries need acking. */
  | { readonly kind: 'stopped'; channel: Channel | undefined };

/** What a consumer tells the worker. */
export interface ConsumerEvents {
  /** A delivery to run (or refuse, or drop); acknowledged on `channel`. */
  readonly delivery: (channel: Channel, message: ConsumeMessage) => void;
  /**
   * The broker took back the deliveries of `channel` (consumer_timeout), saying its timeout
   * (up to 4.2) or not (4.3+ cancels the consumer instead).
   */
  readonly leaseLost: (channel: Channel, timeoutMs: number | undefined) => void;
  /** Whether a queue still exists (a failed ask counts as yes); `fresh`: not from a cache. */
  readonly queueAlive: (queue: string, how?: { readonly fresh: boolean }) => Promise<boolean>;
}

/**
 * A worker's consumer of the task queue: waits for the queue to exist, consumes it, takes it up
 * again on a fresh channel when the broker closes or cancels the old one, and tells a lost lease
 * (consumer_timeout) from other channel errors.
 *
 * It holds at most `limit` deliveries at once. A consumer's prefetch is fixed once it consumes,
 * and counts only its own deliveries; so when the limit changes, or deliveries of an earlier
 * consumer settle, it consumes anew with a prefetch of what is free (`adaptive`): the worker
 * never holds more than the limit, and a delivery it hands back cannot come straight back to a
 * worker with no room. With a fixed limit (`--prefetch`) one consumer takes it all.
 */
export class TaskConsumer {
  private current: ConsumerState = { kind: 'off' };
  private model: ChannelModel | undefined;
  private topping: Promise<void> | undefined;
  private again = false;
  /** Takes no deliveries until then (ms since the epoch): see `pause`. */
  private pausedUntil = 0;
  private resumeTimer: NodeJS.Timeout | undefined;
  /**
   * Whether it consumes anew as what is free changes: an adaptive consumer always; a fixed one
   * once it paused (its consumer then starts with what is free, and grows back to the limit).
   */
  private resizing: boolean;

  constructor(
    private readonly queue: string,
    private limit: number,
    private readonly log: Logger,
    private readonly events: ConsumerEvents,
    private readonly adaptive = false,
    /** Tasks running now: a batch can keep more slots busy than it is deliveries. */
    private readonly running: () => number = () => 0,
    /** The longest task, asked as `x-consumer-timeout` where the broker takes it; 0: never. */
    private readonly longestTaskMs = 0,
  ) {
    this.resizing = adaptive;
  }

  /**
   * Takes no deliveries for `ms` (or till a longer pause ends): cancels the consumer, keeping
   * the channel and the deliveries held on it, and consumes again after. Resolves once no
   * delivery comes any more (the broker's cancel-ok). A worker backs off this way when it
   * meets runs it cannot see, so that their tasks go to workers that can.
   */
  async pause(ms: number): Promise<void> {
    const until = Date.now() + ms;
    if (until > this.pausedUntil) {
      this.pausedUntil = until;
      this.resizing = true;
      clearTimeout(this.resumeTimer);
      this.resumeTimer = setTimeout(() => {
        this.pausedUntil = 0;
        this.topUp();
      }, ms);
      this.resumeTimer.unref();
    }
    for (;;) {
      while (this.topping) await this.topping.catch(() => {});
      const state = this.current;
      if (state.kind !== 'consuming' || !state.tag || !this.paused()) return;
      const tag = state.tag;
      state.tag = '';
      this.topping = state.channel
        .cancel(tag)
        .then(
          () => {},
          () => {},
        )
        .finally(() => {
          this.topping = undefined;
          if (this.again) {
            this.again = false;
            this.topUp();
          }
        });
    }
  }

  private paused(): boolean {
    return this.pausedUntil > Date.now();
  }

  /** A task ended: a slot may be free for one more delivery. */
  nudge(): void {
    this.topUp();
  }

  /** Holds at most `limit` deliveries from now on (adaptive consumers only). */
  setLimit(limit: number): void {
    if (!this.adaptive || limit === this.limit) return;
    this.limit = limit;
    this.topUp();
  }

  /** A delivery of `channel` is settled (acknowledged, handed back or refused). */
  released(channel: Channel, message: Message): void {
    const state = this.current;
    if (state.kind !== 'consuming' || state.channel !== channel) return;
    const tag = String(message.fields.consumerTag);
    const count = (state.held.get(tag) ?? 1) - 1;
    if (count > 0) state.held.set(tag, count);
    else state.held.delete(tag);
    this.topUp();
  }

  /**
   * Consumes anew when what the current consumer may take is not what is free: deliveries of
   * earlier consumers settled, or the limit changed. One at a time.
   */
  private topUp(): void {
    if (!this.resizing) return;
    if (this.topping) {
      this.again = true;
      return;
    }
    const state = this.current;
    // Paused: `pause` cancelled the consumer, and its timer tops up again.
    if (state.kind !== 'consuming' || this.paused()) return;
    let held = 0;
    for (const count of state.held.values()) held += count;
    const mine = state.tag ? (state.held.get(state.tag) ?? 0) : 0;
    const others = held - mine;
    const want = this.limit - others;
    if (state.tag && want === state.prefetch) return;
    if (this.free(held) <= 0 && (!state.tag || want > state.prefetch)) return;
    this.topping = this.reconsume(state)
      .catch((error: unknown) => this.log.debug({ err: error }, 'could not consume anew'))
      .finally(() => {
        this.topping = undefined;
        if (this.again) {
          this.again = false;
          this.topUp();
        }
      });
  }

  /**
   * Deliveries one more consumer may take: the limit less what is held, or less the tasks
   * running if more (a batch keeps several slots busy).
   */
  private free(held: number): number {
    return this.limit - Math.max(held, this.running());
  }

  private async reconsume(state: Extract<ConsumerState, { kind: 'consuming' }>): Promise<void> {
    const { channel } = state;
    if (state.tag) {
      const tag = state.tag;
      state.tag = '';
      // Resolves on cancel-ok: every delivery sent through it before has come by then.
      await channel.cancel(tag);
    }
    let held = 0;
    for (const count of state.held.values()) held += count;
    const free = this.free(held);
    if (free <= 0 || this.current !== state || this.paused()) return;
    await channel.prefetch(free);
    // Deliveries can come before consume() resolves: the tag is known by then from the first.
    let known = '';
    const { consumerTag } = await channel.consume(
      this.queue,
      (message) => {
        known ||= message?.fields.consumerTag ?? '';
        void this.onDelivery(channel, message, known);
      },
      this.consumeOptions(),
    );
    known = consumerTag;
    if (this.current !== state) {
      await channel.cancel(consumerTag).catch(() => {});
      return;
    }
    state.tag = consumerTag;
    state.prefetch = free;
  }

  /** basic.consume's options: manual acks, and the worker's own timeout where it can ask. */
  private consumeOptions(): Options.Consume {
    const args = this.model
      ? consumeArguments(brokerVersionOf(this.model), this.longestTaskMs)
      : undefined;
    return args ? { noAck: false, arguments: args } : { noAck: false };
  }

  /**
   * The `x-consumer-timeout` asked for (its consumers' and, from the tasker's same setting, the
   * task queue's), in ms; undefined where the broker takes none (3.10) or none is set.
   */
  get ownTimeoutMs(): number | undefined {
    if (!this.model) return undefined;
    return consumeArguments(brokerVersionOf(this.model), this.longestTaskMs)?.[
      'x-consumer-timeout'
    ];
  }

  get state(): ConsumerState {
    return this.current;
  }

  /** Connected, and consuming or waiting for the task queue: what /readyz says. */
  get ready(): boolean {
    const kind = this.current.kind;
    return this.model !== undefined && (kind === 'consuming' || kind === 'waiting for queue');
  }

  /** Whether `channel` is the one deliveries are acknowledged on now. */
  isCurrent(channel: Channel): boolean {
    const state = this.current;
    return (state.kind === 'consuming' || state.kind === 'stopped') && state.channel === channel;
  }

  /** Takes a (re)connection: channels are opened on it from now on. */
  attach(model: ChannelModel): void {
    // Forget a connection as soon as it closes: nothing may open channels on it afterwards.
    model.on('close', () => {
      if (this.model === model) this.model = undefined;
    });
    this.model = model;
  }

  /**
   * The tasker declares the task queue; a worker started first waits for it (saying so every
   * 30 s), and one whose queue was deleted waits for it to be declared again (saying so once).
   * Ends when the queue exists, the consumer stops or the connection goes.
   */
  async waitForQueue(why: 'not yet' | 'gone' = 'not yet'): Promise<void> {
    const model = this.model;
    if (!model || this.current.kind === 'stopped') return;
    let said = 0;
    if (why === 'gone') {
      this.log.warn(
        `task queue \`${this.queue}\` is gone; waiting for a tasker to declare it again`,
      );
      said = Number.POSITIVE_INFINITY;
    }
    const waiting: ConsumerState = { kind: 'waiting for queue' };
    this.current = waiting;
    const mine = () => this.current === waiting && this.model === model;
    try {
      while (mine()) {
        const channel = await model.createChannel();
        channel.on('error', () => {});
        try {
          await channel.checkQueue(this.queue);
          await channel.close().catch(() => {});
          if (why === 'gone')
            this.log.info(`task queue \`${this.queue}\` is back; taking tasks again`);
          return;
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
        if (Date.now() - said > 30 * SECOND) {
          this.log.info(
            `task queue \`${this.queue}\` does not exist yet; waiting for a tasker to declare it`,
          );
          said = Date.now();
        }
        for (let waited = 0; waited < 2000 && mine(); waited += 100) await sleep(100);
      }
    } finally {
      if (this.current === waiting) this.current = { kind: 'off' };
    }
  }

  /** Starts consuming on a fresh channel of the current connection (not once stopped). */
  async consume(): Promise<void> {
    const model = this.model;
    if (!model || this.current.kind === 'stopped') return;
    const channel = await model.createChannel();
    // Set when the broker closed the channel because the queue is not there (deleted between
    // our check and the consume): the queue is waited for rather than consumed every second.
    let queueGone = false;
    channel.on('error', (error: Error) => {
      if (isNotFound(error)) {
        queueGone = true;
        return;
      }
      const timeoutMs = consumerTimeoutOf(error);
      if (timeoutMs !== undefined) this.events.leaseLost(channel, timeoutMs);
      else this.log.warn(`task channel closed by the broker: ${error.message}`);
    });
    channel.on('close', () => {
      const state = this.current;
      if (state.kind === 'stopped' && state.channel === channel) state.channel = undefined;
      if (state.kind !== 'consuming' || state.channel !== channel) return;
      this.current = { kind: 'off' };
      // The connection may be fine (a channel-level error): take the queue up again. If the
      // connection went, the broker's recovery calls the worker's onConnect instead.
      setTimeout(
        () => {
          if (this.is('off') && this.model === model) void this.takeUpAgain(queueGone);
        },
        queueGone ? 0 : 1000,
      );
    });
    await channel.prefetch(this.limit);
    // Stopped meanwhile (a SIGTERM while the channel opened): take no deliveries.
    if (this.is('stopped')) {
      await channel.close().catch(() => {});
      return;
    }
    // Known as the consumer before the first delivery, which can come before consume() resolves.
    const consuming: Extract<ConsumerState, { kind: 'consuming' }> = {
      kind: 'consuming',
      channel,
      tag: '',
      prefetch: this.limit,
      held: new Map(),
    };
    this.current = consuming;
    let started: () => void = () => {};
    this.topping = new Promise<void>((resolve) => {
      started = resolve;
    });
    try {
      // Paused (a new channel while backing off): the pause's timer consumes.
      if (!this.paused()) {
        const { consumerTag } = await channel.consume(
          this.queue,
          (message) => void this.onDelivery(channel, message, ''),
          this.consumeOptions(),
        );
        consuming.tag = consumerTag;
      }
    } catch (error) {
      // The queue went before we consumed it: the channel's close waits for it to come back.
      if (!isNotFound(error)) throw error;
    } finally {
      this.topping = undefined;
      started();
      if (this.again) {
        this.again = false;
        this.topUp();
      }
    }
  }

  /** Consumes again after a lost channel, waiting first for the queue if it is gone. */
  private async takeUpAgain(queueGone: boolean): Promise<void> {
    // On this connection only: a new one is taken up by the worker's onConnect.
    const model = this.model;
    try {
      if (queueGone) await this.waitForQueue('gone');
      if (this.is('off') && model && this.model === model) await this.consume();
    } catch (error) {
      this.log.debug({ err: error }, 'could not consume again');
    }
  }

  /** Stops deliveries but keeps the channel: the running tasks' deliveries are acked on it. */
  async stop(): Promise<void> {
    clearTimeout(this.resumeTimer);
    const state = this.current;
    this.current = {
      kind: 'stopped',
      channel: state.kind === 'consuming' ? state.channel : undefined,
    };
    if (state.kind === 'consuming' && state.tag)
      await state.channel.cancel(state.tag).catch(() => {});
  }

  /** Messages ready in the task queue: -1 if it cannot be checked, undefined if not connected. */
  async depth(): Promise<number | undefined> {
    const channel = await this.model?.createChannel().catch(() => undefined);
    if (!channel) return undefined;
    channel.on('error', () => {});
    const depth = await channel.checkQueue(this.queue).then(
      (queue) => queue.messageCount,
      () => -1,
    );
    await channel.close().catch(() => {});
    return depth;
  }

  /** A delivery, or (null) the broker cancelled a consumer: `tag` is its tag, '' for the first. */
  private async onDelivery(
    channel: Channel,
    message: ConsumeMessage | null,
    tag: string,
  ): Promise<void> {
    const state = this.current;
    if (message) {
      if (state.kind === 'consuming' && state.channel === channel) {
        const by = message.fields.consumerTag;
        state.held.set(by, (state.held.get(by) ?? 0) + 1);
      }
      this.events.delivery(channel, message);
      return;
    }
    // A consumer we replaced already: nothing to do.
    if (state.kind === 'consuming' && tag !== '' && state.tag !== tag) return;
    // The broker cancelled the consumer: the queue was deleted, or (RabbitMQ 4.3+) a delivery
    // outlived consumer_timeout.
    // Running tasks of this channel keep running and publish their results all the same.
    const queueLeft = this.model ? await this.queueStays() : false;
    if (queueLeft) {
      this.log.warn(
        `the broker cancelled our consumer on \`${this.queue}\`: a task outlived consumer_timeout (RabbitMQ 4.3+); raise it above the longest task`,
      );
      this.events.leaseLost(channel, undefined);
    }
    const now = this.current;
    if (now.kind === 'consuming' && now.channel === channel) this.current = { kind: 'off' };
    if (now.kind === 'stopped' && now.channel === channel) now.channel = undefined;
    await channel.close().catch(() => {});
    if (this.is('off') && this.model) await this.takeUpAgain(!queueLeft);
  }

  /**
   * Whether the task queue is still there a moment after the broker cancelled our consumer.
   * RabbitMQ 4.0 sends the cancel of a deleted quorum queue before the queue is gone (checked
   * on 4.0.5: a first look found it, one a few milliseconds later did not), so it looks three
   * times, 300 ms apart, asking afresh each time (the publisher's answer is cached for 30 s).
   */
  private async queueStays(): Promise<boolean> {
    for (let look = 0; look < 3; look++) {
      if (look > 0) await sleep(300);
      if (!(await this.events.queueAlive(this.queue, { fresh: true }))) return false;
    }
    return true;
  }

  /** Asked through a method, not `this.current.kind`: TypeScript keeps a narrowed field's type across awaits. */
  private is(kind: ConsumerState['kind']): boolean {
    return this.current.kind === kind;
  }
}
