import type { Message, Options } from 'amqplib';
import * as v from 'valibot';
import { PROTOCOL_VERSION, type TaskMessage, type TaskResult } from './protocol.js';
import { type ResultReading, readResult } from './readResult.js';
import * as schemas from './schemas.js';
import { checkSignature } from './signing.js';
import { NAMES, RESULTS_QUEUE_PATTERN, RUN_HEADER, resultsQueue } from './topology.js';

/** AMQP `type` property of each kind of message Warren sends. */
export const TYPE = {
  task: 'warren.task',
  result: 'warren.result',
  started: 'warren.started',
  lease: 'warren.lease',
  control: 'warren.control',
} as const;

/** Bodies larger than this are refused unread: a command is at most 1 MiB. */
export const MAX_BODY = 2 * 1024 * 1024;

/** A worker's notice that it started an attempt. */
export type StartedNotice = v.InferOutput<typeof schemas.StartedNotice>;

/** A worker's lease on the attempts of a run it holds or runs. */
export type Lease = v.InferOutput<typeof schemas.Lease>;

/** A control message: `cancel` a run, or `drain` (workers exit once idle). */
export type ControlMessage = v.InferOutput<typeof schemas.ControlMessage>;

type Decoded<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: string };

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

function parse<T>(content: Buffer, schema: v.GenericSchema<unknown, T>, what: string): Decoded<T> {
  if (content.length > MAX_BODY)
    return { ok: false, reason: `${what} body is ${content.length} bytes (limit ${MAX_BODY})` };
  let body: unknown;
  try {
    body = JSON.parse(content.toString('utf8'));
  } catch {
    return { ok: false, reason: `${what} body is not JSON` };
  }
  const version = (body as { v?: unknown } | null)?.v;
  if (typeof body === 'object' && body !== null && version !== PROTOCOL_VERSION) {
    return {
      ok: false,
      reason: `${what} has protocol version ${JSON.stringify(version)}, this Warren speaks ${PROTOCOL_VERSION}`,
    };
  }
  const parsed = v.safeParse(schema, body);
  if (!parsed.success) {
    const [issue] = parsed.issues;
    return {
      ok: false,
      reason: `${what} does not have the expected shape: ${v.getDotPath(issue) ?? 'body'}: ${issue.message}`,
    };
  }
  return { ok: true, value: parsed.output };
}

/** Body and properties of a task message (docs/protocol.md). */
export function encodeTask(task: TaskMessage): { content: Buffer; options: Options.Publish } {
  return {
    content: json(task),
    options: {
      persistent: true,
      mandatory: true,
      contentType: 'application/json',
      type: TYPE.task,
      messageId: task.task,
      correlationId: task.run,
      replyTo: resultsQueue(task.run),
      timestamp: Math.floor(Date.now() / 1000),
      headers: { [RUN_HEADER]: task.run },
    },
  };
}

/** Reads a task message as a worker receives it; `reason` says why one is refused. */
export function decodeTask(message: Message): Decoded<TaskMessage & { replyTo: string }> {
  const decoded = parse(message.content, schemas.TaskMessage, 'task');
  if (!decoded.ok) return decoded;
  const replyTo = message.properties.replyTo as string | undefined;
  if (
    !replyTo ||
    !RESULTS_QUEUE_PATTERN.test(replyTo) ||
    replyTo !== resultsQueue(decoded.value.run)
  ) {
    return {
      ok: false,
      reason: `task has reply-to ${JSON.stringify(replyTo ?? null)}, expected ${JSON.stringify(resultsQueue(decoded.value.run))}`,
    };
  }
  return { ok: true, value: { ...decoded.value, replyTo } };
}

/** Body and properties of a result message. */
export function encodeResult(result: TaskResult): { content: Buffer; options: Options.Publish } {
  return {
    content: json(result),
    options: {
      persistent: true,
      mandatory: true,
      contentType: 'application/json',
      type: TYPE.result,
      messageId: `${result.task}.${result.attempt}`,
      correlationId: result.run,
      timestamp: Math.floor(Date.now() / 1000),
    },
  };
}

/** Body and properties of a started notice (not persistent: losing one costs nothing). */
export function encodeStarted(notice: StartedNotice): {
  content: Buffer;
  options: Options.Publish;
} {
  return {
    content: json(notice),
    options: { contentType: 'application/json', type: TYPE.started, correlationId: notice.run },
  };
}

/** Body and properties of a lease (not persistent: the next one renews it). */
export function encodeLease(lease: Lease): { content: Buffer; options: Options.Publish } {
  return {
    content: json(lease),
    options: { contentType: 'application/json', type: TYPE.lease, correlationId: lease.run },
  };
}

export function encodeControl(control: ControlMessage): {
  content: Buffer;
  options: Options.Publish;
} {
  return {
    content: json(control),
    options: { contentType: 'application/json', type: TYPE.control },
  };
}

export function decodeControl(message: Message): Decoded<ControlMessage> {
  return parse(message.content, schemas.ControlMessage, 'control message');
}

/**
 * What can arrive on a run's results queue: a result; a result that could not be read, as its
 * attempt's `unreadable` failure; a started notice; a dead-lettered task; or junk, which names
 * no attempt (logged and acknowledged).
 */
export type ResultsEvent =
  | Exclude<ResultReading, { kind: 'junk' }>
  | { readonly kind: 'started'; readonly notice: StartedNotice }
  /** A worker holds or runs these attempts of the run (renewed every lease interval). */
  | { readonly kind: 'lease'; readonly lease: Lease }
  /** A task the broker dead-lettered: no worker finished it (`reason` from x-death). */
  | {
      readonly kind: 'dead';
      readonly task: TaskMessage;
      readonly reason: string;
      readonly deliveries: number;
    }
  | { readonly kind: 'junk'; readonly reason: string };

/**
 * Tells what arrived on a run's results queue. Whatever came through the dead-letter exchange is
 * a dead-lettered task and nothing else, whatever its `type` says: a message dead-lettered from
 * the task queue can never pass for a result. With a signing key, a dead-lettered task counts
 * only if it carries the tasker's own signature.
 */
export function decodeResultsMessage(message: Message, signingKey?: string): ResultsEvent {
  const type = message.properties.type as string | undefined;
  const headers = (message.properties.headers ?? {}) as Record<string, unknown>;
  const deaths = headers['x-death'] as { reason?: string; count?: number }[] | undefined;
  if (message.fields.exchange === NAMES.deadExchange || Array.isArray(deaths)) {
    if (type !== TYPE.task) {
      return {
        kind: 'junk',
        reason: `a dead letter that is not a task (type ${JSON.stringify(type ?? null)})`,
      };
    }
    const decoded = parse(message.content, schemas.TaskMessage, 'dead-lettered task');
    if (!decoded.ok) return { kind: 'junk', reason: decoded.reason };
    const forged = signingKey ? checkSignature(signingKey, message) : undefined;
    if (forged)
      return { kind: 'junk', reason: `a dead-lettered task not from this tasker: ${forged}` };
    const deliveries = Number(headers['x-delivery-count'] ?? 0);
    return {
      kind: 'dead',
      task: decoded.value,
      reason: String((Array.isArray(deaths) && deaths[0]?.reason) || 'unknown'),
      deliveries,
    };
  }
  // A foreign client's message with no type at all is taken for what the queue is for.
  if (type === TYPE.result || type === undefined)
    return readResult(message.content, message.properties, MAX_BODY);
  if (type === TYPE.started) {
    const decoded = parse(message.content, schemas.StartedNotice, 'started notice');
    return decoded.ok
      ? { kind: 'started', notice: decoded.value }
      : { kind: 'junk', reason: decoded.reason };
  }
  if (type === TYPE.lease) {
    const decoded = parse(message.content, schemas.Lease, 'lease');
    return decoded.ok
      ? { kind: 'lease', lease: decoded.value }
      : { kind: 'junk', reason: decoded.reason };
  }
  return { kind: 'junk', reason: `unexpected message of type ${JSON.stringify(type ?? null)}` };
}
