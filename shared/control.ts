import type { Channel, ChannelModel } from 'amqplib';
import { PROTOCOL_VERSION } from './protocol.js';
import { declareControlExchange, NAMES } from './topology.js';
import { type ControlMessage, decodeControl, encodeControl } from './wire.js';

/**
 * Control messages, both ways, for every process that speaks them: the tasker hears `cancel`
 * for its run, `tasker cancel` sends it, the worker hears `cancel` and `drain`. They travel on
 * one fanout exchange; each listener binds a queue of its own (exclusive, deleted with its
 * connection), so every process hears every message sent while it is connected, and none
 * sent before.
 */

/** A `cancel` of a run: workers stop its running tasks and drop its queued ones. */
export const cancelMessage = (run: string): ControlMessage => ({
  v: PROTOCOL_VERSION,
  action: 'cancel',
  run,
});

/** A `drain`: workers finish their running tasks and exit. */
export const drainMessage = (): ControlMessage => ({ v: PROTOCOL_VERSION, action: 'drain' });

/** Publishes one control message (declaring the exchange first: it may not exist yet). */
export async function sendControl(channel: Channel, message: ControlMessage): Promise<void> {
  await declareControlExchange(channel);
  const { content, options } = encodeControl(message);
  channel.publish(NAMES.controlExchange, '', content, options);
}

/** What a control listener is told. */
export interface ControlHandlers {
  readonly message: (message: ControlMessage) => void;
  /** A message that could not be read (a foreign or newer peer): it is dropped. */
  readonly unreadable?: (reason: string) => void;
}

/**
 * Hears control messages on `model` until its connection closes (call again after a reconnect:
 * the queue goes with the connection). Messages are not acknowledged: a missed one is not sent
 * again, and each says what it is about, so hearing one twice does no harm.
 */
export async function listenToControl(
  model: ChannelModel,
  handlers: ControlHandlers,
): Promise<void> {
  const channel = await model.createChannel();
  channel.on('error', () => {});
  const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
  await channel.bindQueue(queue, NAMES.controlExchange, '');
  await channel.consume(
    queue,
    (message) => {
      if (!message) return;
      const decoded = decodeControl(message);
      if (decoded.ok) handlers.message(decoded.value);
      else handlers.unreadable?.(decoded.reason);
    },
    { noAck: true },
  );
}
