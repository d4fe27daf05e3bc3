import type { Message, Options } from 'amqplib';
import * as v from 'valibot';
import { PROTOCOL_VERSION, type TaskMessage, type TaskResult } from './protocol.js';
import { type ResultReading, readResult, readResultBody } from './readResult.js';
import * as schemas from './schemas.js';
import { checkSignature } from './signing.js';
import {
  NAMES,
  RESULTS_QUEUE_PATTERN,
  RUN_HEADER,
  resultsQueue,
  STAMP_HEADER,
} from './topology.js';

/** AMQP `type` property of each kind of message Warren sends. */
export const TYPE = {
  task: 'warren.task',
  /** Several tasks of a run in one message. */
  batch: 'warren.batch',
  result: 'warren.result',
  /** Several results of a run in one message. */
  results: 'warren.results',
  started: 'warren.started',
  lease: 'warren.lease',
  /** A worker gave tasks of a run back unrun: it does not share the run's working directory. */
  givenBack: 'warren.given-back',
  control: 'warren.control',
} as const;

/** Bodies larger than this are refused unread: a command is at most 1 MiB. */
export const MAX_BODY = 2 * 1024 * 1024;

/** A worker's notice that it started an attempt. */
export type StartedNotice = v.InferOutput<typeof schemas.StartedNotice>;

/** A worker's lease on the attempts of a run it holds or runs. */
export type Lease = v.InferOutput<typeof schemas.Lease>;

/** A worker's word that it gave tasks of a run back: it cannot see the run in its state dir. */
export type GivenBack = v.InferOutput<typeof schemas.GivenBack>;

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

/**
 * Body and properties of a message of tasks (docs/protocol.md): one task is a `warren.task`
 * message, several (all of one run) a `warren.batch`. `stamp`, the run's stamp in the tasker's
 * state dir, lets a worker tell whether it shares the run's working directory.
 */
export function encodeTasks(
  tasks: readonly TaskMessage[],
  stamp?: string,
): {
  content: Buffer;
  options: Options.Publish;
} {
  const first = tasks[0];
  if (!first) throw new Error('no tasks to encode');
  const batch = tasks.length > 1;
  return {
    content: batch
      ? json({ v: PROTOCOL_VERSION, run: first.run, tasks: tasks.map(withoutRun) })
      : json(first),
    options: {
      persistent: true,
      mandatory: true,
      contentType: 'application/json',
      type: batch ? TYPE.batch : TYPE.task,
      messageId: batch ? batchId(first) : first.task,
      correlationId: first.run,
      replyTo: resultsQueue(first.run),
      timestamp: Math.floor(Date.now() / 1000),
      headers: { [RUN_HEADER]: first.run, ...(stamp ? { [STAMP_HEADER]: stamp } : {}) },
    },
  };
}

/** Body and properties of a message of one task. */
export const encodeTask = (task: TaskMessage, stamp?: string) => encodeTasks([task], stamp);

/** A batch's message id: its first task's id and attempt. */
const batchId = (first: TaskMessage) => `batch.${first.task}.${first.attempt}`;

function withoutRun({ v: _v, run: _run, ...fields }: TaskMessage) {
  return fields;
}

/** The tasks of a `warren.batch` body, each a whole task message. */
function unbatch(batch: v.InferOutput<typeof schemas.TaskBatch>): TaskMessage[] {
  return batch.tasks.map((task) => ({ v: batch.v, run: batch.run, ...task }));
}

/** Reads the tasks of a message, one or a batch, from what is in it. */
function readTasks(message: Message, what: string): Decoded<TaskMessage[]> {
  if (message.properties.type === TYPE.batch) {
    const decoded = parse(message.content, schemas.TaskBatch, `${what} batch`);
    return decoded.ok ? { ok: true, value: unbatch(decoded.value) } : decoded;
  }
  const decoded = parse(message.content, schemas.TaskMessage, what);
  return decoded.ok ? { ok: true, value: [decoded.value] } : decoded;
}

/**
 * Reads a message of the task queue as a worker receives it: one task or a batch, the results
 * queue they all report to, and the run's stamp if it carries one (a header of another type is
 * taken as none); `reason` says why one is refused.
 */
export function decodeTasks(message: Message): Decoded<{
  readonly tasks: readonly TaskMessage[];
  readonly replyTo: string;
  readonly stamp: string | undefined;
}> {
  const decoded = readTasks(message, 'task');
  if (!decoded.ok) return decoded;
  const run = (decoded.value[0] as TaskMessage).run;
  const replyTo = message.properties.replyTo as string | undefined;
  if (!replyTo || !RESULTS_QUEUE_PATTERN.test(replyTo) || replyTo !== resultsQueue(run)) {
    return {
      ok: false,
      reason: `task has reply-to ${JSON.stringify(replyTo ?? null)}, expected ${JSON.stringify(resultsQueue(run))}`,
    };
  }
  const stamp = message.properties.headers?.[STAMP_HEADER] as unknown;
  return {
    ok: true,
    value: {
      tasks: decoded.value,
      replyTo,
      stamp: typeof stamp === 'string' && stamp !== '' ? stamp : undefined,
    },
  };
}

/**
 * Body and properties of a message of results, all of one run: one result is a
 * `warren.result` message, several a `warren.results`.
 */
export function encodeResults(results: readonly TaskResult[]): {
  content: Buffer;
  options: Options.Publish;
} {
  const first = results[0];
  if (!first) throw new Error('no results to encode');
  const batch = results.length > 1;
  return {
    content: batch ? json({ v: PROTOCOL_VERSION, run: first.run, results }) : json(first),
    options: {
      persistent: true,
      mandatory: true,
      contentType: 'application/json',
      type: batch ? TYPE.results : TYPE.result,
      messageId: batch
        ? `results.${first.task}.${first.attempt}`
        : `${first.task}.${first.attempt}`,
      correlationId: first.run,
      timestamp: Math.floor(Date.now() / 1000),
    },
  };
}

/** Body and properties of a result message. */
export const encodeResult = (result: TaskResult) => encodeResults([result]);

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

/** Body and properties of a given-back notice (not persistent: it only informs). */
export function encodeGivenBack(notice: GivenBack): { content: Buffer; options: Options.Publish } {
  return {
    content: json(notice),
    options: { contentType: 'application/json', type: TYPE.givenBack, correlationId: notice.run },
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
 * attempt's `unreadable` failure; several of those in one message; a started notice; a
 * dead-lettered message of tasks; or junk, which names no attempt (logged and acknowledged).
 */
export type ResultsEvent =
  | Exclude<ResultReading, { kind: 'junk' }>
  /** A `warren.results` message: each of its results read on its own. */
  | { readonly kind: 'results'; readonly readings: readonly ResultReading[] }
  | { readonly kind: 'started'; readonly notice: StartedNotice }
  /** A worker holds or runs these attempts of the run (renewed every lease interval). */
  | { readonly kind: 'lease'; readonly lease: Lease }
  /** A worker gave these attempts back unrun: it does not share the run's working directory. */
  | { readonly kind: 'given back'; readonly notice: GivenBack }
  /**
   * A message of tasks the broker dead-lettered (one task, or a batch): no worker finished
   * them (`reason` from x-death).
   */
  | {
      readonly kind: 'dead';
      readonly tasks: readonly TaskMessage[];
      readonly reason: string;
      readonly deliveries: number;
    }
  | { readonly kind: 'junk'; readonly reason: string };

/**
 * Tells what arrived on a run's results queue. Whatever came through the dead-letter exchange is
 * a dead-lettered message of tasks and nothing else, whatever its `type` says: a message
 * dead-lettered from the task queue can never pass for a result. With a signing key, a
 * dead-lettered message counts only if it carries the tasker's own signature.
 */
export function decodeResultsMessage(message: Message, signingKey?: string): ResultsEvent {
  const type = message.properties.type as string | undefined;
  const headers = (message.properties.headers ?? {}) as Record<string, unknown>;
  const deaths = headers['x-death'] as { reason?: string; count?: number }[] | undefined;
  if (message.fields.exchange === NAMES.deadExchange || Array.isArray(deaths)) {
    if (type !== TYPE.task && type !== TYPE.batch) {
      return {
        kind: 'junk',
        reason: `a dead letter that is not a task (type ${JSON.stringify(type ?? null)})`,
      };
    }
    const decoded = readTasks(message, 'dead-lettered task');
    if (!decoded.ok) return { kind: 'junk', reason: decoded.reason };
    const forged = signingKey ? checkSignature(signingKey, message) : undefined;
    if (forged)
      return { kind: 'junk', reason: `a dead-lettered task not from this tasker: ${forged}` };
    const deliveries = Number(headers['x-delivery-count'] ?? 0);
    return {
      kind: 'dead',
      tasks: decoded.value,
      reason: String((Array.isArray(deaths) && deaths[0]?.reason) || 'unknown'),
      deliveries,
    };
  }
  // A foreign client's message with no type at all is taken for what the queue is for.
  if (type === TYPE.result || type === undefined)
    return readResult(message.content, message.properties, MAX_BODY);
  if (type === TYPE.results) {
    const decoded = parse(message.content, schemas.ResultBatch, 'results message');
    if (!decoded.ok) return { kind: 'junk', reason: decoded.reason };
    const now = new Date().toISOString();
    return {
      kind: 'results',
      readings: decoded.value.results.map((body) => readResultBody(body, {}, now)),
    };
  }
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
  if (type === TYPE.givenBack) {
    const decoded = parse(message.content, schemas.GivenBack, 'given-back notice');
    return decoded.ok
      ? { kind: 'given back', notice: decoded.value }
      : { kind: 'junk', reason: decoded.reason };
  }
  return { kind: 'junk', reason: `unexpected message of type ${JSON.stringify(type ?? null)}` };
}
