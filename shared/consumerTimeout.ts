import type { ChannelModel } from 'amqplib';
import { HOUR, MINUTE } from './duration.js';

/** The first RabbitMQ that takes `x-consumer-timeout` on basic.consume. */
export const CONSUMER_TIMEOUT_SINCE = '3.11.15';

/**
 * The longest task a worker lets run before the broker may take its delivery back, by default:
 * a week (RabbitMQ's own default is 30 minutes). Like every duration setting, at most 24 days.
 */
export const DEFAULT_LONGEST_TASK = 7 * 24 * HOUR;

/**
 * Added to the longest task: after the command exits, its outputs are uploaded and its result
 * confirmed before the delivery is acknowledged (invariant 4, "ack last").
 */
export const ACK_MARGIN = 5 * MINUTE;

/** Whether a broker `version` (`4.0.5`, `3.10.8`) takes a per-consumer timeout. */
export function takesConsumerTimeout(version: string): boolean {
  const have = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!have) return false;
  const want = CONSUMER_TIMEOUT_SINCE.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const a = Number(have[i + 1]);
    const b = want[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

/** The version a connection's broker says it is ('' when it does not say). */
export function brokerVersionOf(model: ChannelModel): string {
  const version = model.connection.serverProperties?.version;
  return typeof version === 'string' ? version : '';
}

/**
 * The task queues' `x-consumer-timeout` for a broker `version`: the longest task plus
 * `ACK_MARGIN` on 3.11.15 and later (checked on 4.0.5: its consumers are held to it rather than
 * to `consumer_timeout`), undefined on older brokers or when the longest task is 0.
 */
export function queueTimeout(version: string, longestTaskMs: number): number | undefined {
  if (longestTaskMs === 0 || !takesConsumerTimeout(version)) return undefined;
  return longestTaskMs + ACK_MARGIN;
}

/**
 * The basic.consume arguments of a worker's task consumer: `x-consumer-timeout` of the longest
 * task plus `ACK_MARGIN` where the broker may take it (3.11.15 on), none on older brokers or
 * when the longest task is 0. RabbitMQ 4.0.5 ignores it on a consumer (checked: only the
 * queue's argument counts there, see `queueTimeout`); RabbitMQ's own notes for 4.3 put the
 * consumer's argument first. Asked all the same, so that a worker's own setting wins where the
 * broker honours it.
 */
export function consumeArguments(
  version: string,
  longestTaskMs: number,
): Record<string, number> | undefined {
  const timeout = queueTimeout(version, longestTaskMs);
  return timeout === undefined ? undefined : { 'x-consumer-timeout': timeout };
}
