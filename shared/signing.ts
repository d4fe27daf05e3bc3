import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Message, Options } from 'amqplib';

/** Header holding a task's signature: `v1=<hex HMAC-SHA256>`. */
export const SIGNATURE_HEADER = 'warren-signature';

/**
 * What is signed (docs/security.md, "The signature, byte by byte"): the ids the worker acts on
 * (the `message_id`, the run id in `correlation_id`, the `reply_to` queue), each followed by a
 * newline, then the body's bytes as sent, so that neither the command nor where its result goes
 * can be changed without the key. An absent property signs as the empty string.
 */
function signedText(
  messageId: unknown,
  correlationId: unknown,
  replyTo: unknown,
  body: Buffer,
): Buffer {
  const head = `${String(messageId ?? '')}\n${String(correlationId ?? '')}\n${String(replyTo ?? '')}\n`;
  return Buffer.concat([Buffer.from(head, 'utf8'), body]);
}

/** The key is the UTF-8 bytes of the text as given: a base64 key is not decoded. */
function hmac(key: string, text: Buffer): Buffer {
  return createHmac('sha256', Buffer.from(key, 'utf8')).update(text).digest();
}

/**
 * The `warren-signature` header value of a message with these properties and body:
 * `v1=` and the HMAC-SHA256 in lowercase hex.
 */
export function signature(
  key: string,
  properties: Pick<Options.Publish, 'messageId' | 'correlationId' | 'replyTo'>,
  body: Buffer,
): string {
  const { messageId, correlationId, replyTo } = properties;
  return `v1=${hmac(key, signedText(messageId, correlationId, replyTo, body)).toString('hex')}`;
}

/** Adds the signature header to a task's publish options. */
export function sign(key: string, content: Buffer, options: Options.Publish): Options.Publish {
  return {
    ...options,
    headers: { ...options.headers, [SIGNATURE_HEADER]: signature(key, options, content) },
  };
}

/** Why a message's signature does not hold, or undefined when it does. */
export function checkSignature(key: string, message: Message): string | undefined {
  const header = message.properties.headers?.[SIGNATURE_HEADER] as unknown;
  if (typeof header !== 'string') return 'it is not signed (this worker has WARREN_SIGNING_KEY)';
  // Hex of either case is read (the doc asks for lowercase, as Warren writes it).
  const match = /^v1=([0-9a-fA-F]{64})$/.exec(header);
  if (!match) return `its signature header is malformed (expected \`v1=\` and 64 hex digits)`;
  const { messageId, correlationId, replyTo } = message.properties;
  const expected = hmac(key, signedText(messageId, correlationId, replyTo, message.content));
  const given = Buffer.from(match[1] as string, 'hex');
  return timingSafeEqual(expected, given)
    ? undefined
    : 'its signature does not match (wrong key, or the message was altered)';
}
