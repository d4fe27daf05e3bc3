import type { Channel, ChannelModel } from 'amqplib';
import type { Logger } from '../../shared/logger.js';
import { decodeResultsMessage, type ResultsEvent } from '../../shared/wire.js';

/** How a run's results queue is deleted. */
export interface DeleteOptions {
  /** Delete it whatever is left in it (a cancelled run). @defaultValue false */
  readonly force?: boolean;
  /** Whether a message left in the queue is of something the run has recorded already. */
  readonly redundant?: (event: ResultsEvent) => boolean;
}

/** Messages ready in a run's results queue (0 when it cannot be checked). */
export async function resultsWaiting(model: ChannelModel, queue: string): Promise<number> {
  const channel = await model.createChannel();
  channel.on('error', () => {});
  try {
    return (await channel.checkQueue(queue)).messageCount;
  } catch {
    return 0;
  } finally {
    await channel.close().catch(() => {});
  }
}

/**
 * Deletes a run's results queue if nothing the run lacks is left in it; returns how many
 * messages keep it alive otherwise (-1 when it could not be checked, or is gone already).
 *
 * Messages can be left that the run has: results acknowledged just before the consumer
 * closed, whose acks a quorum queue had not applied yet (seen at the end of bursts of short
 * tasks: up to 64 of 2,000), late duplicates, started notices. Each one left is read and
 * given to `redundant`; the queue goes if all are, and is kept whole (nothing acknowledged)
 * if any is not.
 */
export async function deleteResultsQueue(
  model: ChannelModel,
  queue: string,
  options: DeleteOptions & { readonly signingKey: string | undefined; readonly log: Logger },
): Promise<number> {
  const channel = await model.createChannel();
  channel.on('error', () => {});
  try {
    const { messageCount } = await channel.checkQueue(queue);
    if (messageCount > 0 && !options.force) {
      const needed = await unrecorded(channel, queue, options.redundant ?? (() => false), options);
      if (needed > 0) return needed;
    }
    // Quorum queues refuse `if-empty` (closing the connection), hence check, then delete:
    // what could slip in between is a late duplicate of a result the run already has.
    await channel.deleteQueue(queue);
    return 0;
  } catch {
    return -1;
  } finally {
    await channel.close().catch(() => {});
  }
}

/** Reads what is left in the results queue: how many messages the run does not have. */
async function unrecorded(
  channel: Channel,
  queue: string,
  redundant: (event: ResultsEvent) => boolean,
  options: { readonly signingKey: string | undefined; readonly log: Logger },
): Promise<number> {
  let needed = 0;
  let read = 0;
  for (;;) {
    const message = await channel.get(queue, { noAck: false });
    if (!message) break;
    read++;
    if (!redundant(decodeResultsMessage(message, options.signingKey))) needed++;
  }
  options.log.debug(`${read} message(s) left in \`${queue}\`, ${needed} of them not recorded`);
  // Unacknowledged, they all go back to the queue when the channel closes (if it is kept).
  return needed;
}
