import type { ChannelModel } from 'amqplib';
import { InputError } from '../shared/errors.js';
import { declareWorkerQueue, workerQueue } from '../shared/topology.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Tries at the first connect before a name counts as taken: a previous life's connection may still be closing. */
const FIRST_TRIES = 3;

/**
 * A worker's claim on its name, made on every (re)connection: an exclusive queue per name
 * and task queue (`warren.worker.<task queue>.<name>`). At the first connect a name in use is another worker's: the worker
 * refuses to start (InputError, exit 2). On a reconnect it is most likely this worker's own
 * old connection, which the broker has not seen die yet (a network blip): it is retried, with
 * the connection, until the broker lets it go.
 */
export class NameClaim {
  private stage: 'unclaimed' | 'claimed' = 'unclaimed';

  constructor(
    private readonly name: string,
    /** The task queue: a name is unique among the workers of one queue (they serve its runs). */
    private readonly taskQueue: string,
  ) {}

  /** Claims the name on a fresh connection; throws when it is in use. */
  async claim(model: ChannelModel): Promise<void> {
    for (let tried = 1; ; tried++) {
      const channel = await model.createChannel();
      channel.on('error', () => {});
      try {
        await declareWorkerQueue(channel, this.name, this.taskQueue);
        await channel.close().catch(() => {});
        this.stage = 'claimed';
        return;
      } catch (error) {
        if (!/RESOURCE_LOCKED/.test(String((error as Error).message))) throw error;
      }
      // The broker logs the retry with this reason (`broker connection lost (...)`).
      if (this.stage === 'claimed') {
        throw new Error(
          `worker name \`${this.name}\` is still held by this worker's previous connection (queue \`${workerQueue(this.name, this.taskQueue)}\`)`,
        );
      }
      if (tried >= FIRST_TRIES) {
        throw new InputError(
          'WORKER_NAME_IN_USE',
          `worker name \`${this.name}\` is in use by another worker of \`${this.taskQueue}\`; give each worker its own --name (or leave it out)`,
        );
      }
      await sleep(500);
    }
  }
}
