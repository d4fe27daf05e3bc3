import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Message, Options } from 'amqplib';

/** Header holding a task's signature: `v1=<hex HMAC-SHA256>`. */
export const SIGNATURE_HEADER = 'warren-signature';

/**
 * What is signed: the ids the worker acts on (task id, run id, reply-to queue) and the body,
 * so that neither the command nor where its result goes can be changed without the key.
 */
function signedText(
  messageId: unknown,
  correlationId: unknown,
  replyTo: unknown,
  body: Buffer,
): Buffer {
  const head = `${String(messageId ?? '')}\n${String(correlationId ?? '')}\n${String(replyTo ?? '')}\n`;
  return Buffer.concat([Buffer.from(head), body]);
}

function hmac(key: string, text: Buffer): Buffer {
  return createHmac('sha256', key).update(text).digest();
}

/** Adds the signature header to a task's publish options. */
export function sign(key: string, content: Buffer, options: Options.Publish): Options.Publish {
  const digest = hmac(
    key,
    signedText(options.messageId, options.correlationId, options.replyTo, content),
  );
  return {
    ...options,
    headers: { ...options.headers, [SIGNATURE_HEADER]: `v1=${digest.toString('hex')}` },
  };
}

/** Why a message's signature does not hold, or undefined when it does. */
export function checkSignature(key: string, message: Message): string | undefined {
  const header = message.properties.headers?.[SIGNATURE_HEADER] as unknown;
  if (typeof header !== 'string') return 'it is not signed (this worker has WARREN_SIGNING_KEY)';
  const match = /^v1=([0-9a-f]{64})$/.exec(header);
  if (!match) return 'its signature header is malformed';
  const { messageId, correlationId, replyTo } = message.properties;
  const expected = hmac(key, signedText(messageId, correlationId, replyTo, message.content));
  const given = Buffer.from(match[1] as string, 'hex');
  return timingSafeEqual(expected, given)
    ? undefined
    : 'its signature does not match (wrong key, or the message was altered)';
}
