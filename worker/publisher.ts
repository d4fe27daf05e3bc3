import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { Logger } from '../shared/logger.js';
import { PROTOCOL_VERSION, type TaskMessage, type TaskResult } from '../shared/protocol.js';
import { NAMES } from '../shared/topology.js';
import {
  encodeGivenBack,
  encodeLease,
  encodeResults,
  encodeStarted,
  type GivenBack,
  type Lease,
} from '../shared/wire.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** How long a results queue seen alive is taken to be alive without asking again. */
const ALIVE_FOR = 30_000;

/**
 * Results put in one message, at most about this many bytes of them (a message is read up to
 * 2 MiB; escaping can make a tail's bytes several times longer in JSON).
 */
const GROUP_BYTES = 256 * 1024;

/** About how many bytes a result takes in a message. */
const sizeOf = (result: TaskResult) =>
  600 +
  result.stdoutTail.length +
  result.stderrTail.length +
  (result.spawned?.join('').length ?? 0);

/**
 * A worker's side of the results: publishes each result with a publisher confirm (waiting out
 * reconnects), sends started notices and leases, and knows which runs' results queues still exist.
 */
export class ResultPublisher {
  private channel: ConfirmChannel | undefined;
  private model: ChannelModel | undefined;
  private waiters: (() => void)[] = [];
  private readonly returned = new Set<string>();
  private readonly alive = new Map<string, number>();
  private readonly asking = new Map<string, Promise<boolean>>();
  private checker: Promise<Channel> | undefined;
  /** Set when the worker gave up on the broker: results waiting to be published never will be. */
  private gaveUp = false;

  constructor(private readonly log: Logger) {}

  /** Called on every (re)connection. */
  async attach(model: ChannelModel): Promise<void> {
    model.on('close', () => {
      if (this.model === model) this.model = undefined;
    });
    this.model = model;
    this.checker = undefined;
    await this.open(model);
  }

  /** The broker is gone for good: pending and later results fail at once instead of waiting. */
  giveUp(): void {
    this.gaveUp = true;
    for (const wake of this.waiters.splice(0)) wake();
  }

  private async open(model: ChannelModel): Promise<void> {
    const channel = await model.createConfirmChannel();
    let failure: Error | undefined;
    channel.on('error', (error: Error) => {
      failure = error;
    });
    channel.on('return', (message: ConsumeMessage) =>
      this.returned.add(String(message.properties.messageId)),
    );
    channel.on('close', () => {
      if (this.channel === channel) this.channel = undefined;
      // The connection lives on but the broker closed this channel (an access or not-found
      // error): open another, or results would wait for it forever.
      // (Checked a moment later: when the whole connection closes, its channels close first.)
      setTimeout(() => {
        if (this.model !== model || this.channel || this.gaveUp) return;
        this.log.warn(
          `the broker closed the results channel (${failure?.message ?? 'no reason given'}); opening another`,
        );
        void this.open(model).catch((error: unknown) =>
          this.log.warn({ err: error }, 'could not open a results channel'),
        );
      }, 1000);
    });
    this.channel = channel;
    for (const wake of this.waiters.splice(0)) wake();
  }

  /**
   * Whether a results queue exists (the run is still going on). Asked at most every 30 s per
   * queue (`fresh`: asked now); a failed ask counts as alive, so that a broker hiccup never
   * drops work.
   */
  isAlive(queue: string, how: { readonly fresh: boolean } = { fresh: false }): Promise<boolean> {
    const seen = this.alive.get(queue);
    if (!how.fresh && seen !== undefined && Date.now() - seen < ALIVE_FOR)
      return Promise.resolve(true);
    // One question at a time per queue: the first deliveries of a run arrive together (as many
    // as the prefetch), and each opening a channel of its own to ask delayed the run's start.
    let asking = this.asking.get(queue);
    if (!asking) {
      asking = this.ask(queue).finally(() => this.asking.delete(queue));
      this.asking.set(queue, asking);
    }
    return asking;
  }

  private async ask(queue: string): Promise<boolean> {
    const model = this.model;
    if (!model) return true;
    try {
      // One channel kept for asking (a first task of a run waited for three round trips when
      // each question opened and closed a channel of its own). The broker closes it when a
      // queue is not found: the next question opens another.
      this.checker ??= model.createChannel().then((channel) => {
        channel.on('error', () => {});
        channel.on('close', () => {
          this.checker = undefined;
        });
        return channel;
      });
      const checker = this.checker;
      await (await checker).checkQueue(queue);
      this.alive.set(queue, Date.now());
      return true;
    } catch (error) {
      this.checker = undefined;
      return !/NOT_FOUND/.test(String((error as Error).message));
    }
  }

  /** Says a task started, without waiting (losing one costs nothing). */
  started(task: TaskMessage & { replyTo: string }, worker: string, host: string, at: Date): void {
    const { content, options } = encodeStarted({
      v: PROTOCOL_VERSION,
      run: task.run,
      phase: task.phase,
      task: task.task,
      attempt: task.attempt,
      worker,
      host,
      startedAt: at.toISOString(),
    });
    try {
      this.channel?.publish(NAMES.resultsExchange, task.replyTo, content, options);
    } catch {
      // the channel is gone: no notice, the result will say it all
    }
  }

  /** Sends a lease to a run's results queue, without waiting (the next one renews it). */
  lease(replyTo: string, lease: Lease): void {
    const { content, options } = encodeLease(lease);
    try {
      this.channel?.publish(NAMES.resultsExchange, replyTo, content, options);
    } catch {
      // the channel is gone: the next lease goes on the next one
    }
  }

  /**
   * Tells a run's tasker that tasks of it were given back unrun (this worker cannot see the
   * run), without waiting: losing one costs only the tasker's word on it.
   */
  givenBack(replyTo: string, notice: GivenBack): void {
    const { content, options } = encodeGivenBack(notice);
    try {
      this.channel?.publish(NAMES.resultsExchange, replyTo, content, options);
    } catch {
      // the channel is gone: the next give-back says it
    }
  }

  /**
   * Publishes a result and waits for the broker's confirm, across reconnects. Returns false
   * when the run's results queue is gone (the run finished or was cancelled): nothing waits for it.
   */
  result(result: TaskResult, replyTo: string): Promise<boolean> {
    return this.results([result], replyTo);
  }

  /**
   * Publishes the results of one delivery (a batch's) in as few messages as fit (one
   * `warren.results` message, unless their tails are large), and waits for the broker's
   * confirms, across reconnects. One result goes as a `warren.result` message: a client that
   * sends single tasks only ever reads single results. Returns false when the run's results
   * queue is gone.
   */
  async results(results: readonly TaskResult[], replyTo: string): Promise<boolean> {
    const groups: TaskResult[][] = [];
    let size = Number.POSITIVE_INFINITY;
    for (const result of results) {
      const bytes = sizeOf(result);
      if (size + bytes > GROUP_BYTES) {
        groups.push([]);
        size = 0;
      }
      groups[groups.length - 1]?.push(result);
      size += bytes;
    }
    const sent = await Promise.all(groups.map((group) => this.publish(group, replyTo)));
    return sent.every(Boolean);
  }

  private async publish(results: readonly TaskResult[], replyTo: string): Promise<boolean> {
    const { content, options } = encodeResults(results);
    const id = String(options.messageId);
    const first = results[0] as TaskResult;
    const what =
      results.length === 1
        ? `the result of task ${first.task}`
        : `the results of ${results.length} tasks`;
    for (;;) {
      if (this.gaveUp) {
        this.log.error(
          `could not publish ${what}: the broker is gone (the task runs again elsewhere)`,
        );
        return false;
      }
      const channel = this.channel ?? (await this.wait());
      if (!channel) continue;
      const outcome = await new Promise<'ok' | 'retry' | 'nack'>((resolve) => {
        try {
          channel.publish(NAMES.resultsExchange, replyTo, content, options, (error) => {
            if (!error) resolve('ok');
            else resolve(String((error as Error).message) === 'message nacked' ? 'nack' : 'retry');
          });
        } catch {
          resolve('retry');
        }
      });
      if (outcome === 'ok') {
        if (!this.returned.delete(id)) return true;
        this.alive.delete(replyTo);
        this.log.warn(
          `results queue \`${replyTo}\` is gone (the run finished or was cancelled); dropping ${what}`,
        );
        return false;
      }
      if (outcome === 'nack') this.log.warn(`the broker refused ${what}; trying again`);
      await sleep(500);
    }
  }

  /** The next channel, or undefined when the worker gave up on the broker. */
  private wait(): Promise<ConfirmChannel | undefined> {
    return new Promise((resolve) => {
      this.waiters.push(() => resolve(this.channel));
    });
  }
}
