import * as v from 'valibot';
import { PROTOCOL_VERSION, RUN_ID_PATTERN } from './contract.js';
import { failedResult } from './failedResult.js';
import type { AnyFailureClass, TaskResult } from './protocol.js';
import * as schemas from './schemas.js';

/**
 * What a message of type `warren.result` turned out to be: a result; a result that could not
 * be read but names its attempt (that attempt's `unreadable` failure, so that no barrier waits
 * for it); or junk, which names no attempt and is only logged.
 */
export type ResultReading =
  | { readonly kind: 'result'; readonly result: TaskResult }
  | { readonly kind: 'unreadable'; readonly result: TaskResult; readonly reason: string }
  | { readonly kind: 'junk'; readonly reason: string };

/** The AMQP properties that name a result's attempt when its body does not. */
export interface ResultProperties {
  /** `<task>.<attempt>` for Warren's results. */
  readonly messageId?: unknown;
  /** The run id. */
  readonly correlationId?: unknown;
}

/** The longest validation error kept in a reason (a received value can be a whole body). */
const MAX_WHY = 300;
const TASK_ID = /^[0-9a-f]{16}$/;
const MESSAGE_ID = /^([0-9a-f]{16})\.([1-9][0-9]{0,8})$/;

/**
 * Reads a result tolerantly (docs/protocol.md, "Reading a result"): `v`, `run`, `phase`,
 * `task`, `attempt` and `state` are required; every other field takes its default when absent
 * or null. A failure class this Warren does not know is kept as given. A body larger than
 * `maxBody` bytes is not read.
 */
export function readResult(
  content: Buffer,
  properties: ResultProperties,
  maxBody: number,
): ResultReading {
  const now = new Date().toISOString();
  if (content.length > maxBody)
    return unreadable(
      undefined,
      properties,
      `its body is ${content.length} bytes (limit ${maxBody})`,
      now,
    );
  let body: unknown;
  try {
    body = JSON.parse(content.toString('utf8'));
  } catch {
    return unreadable(undefined, properties, 'its body is not JSON', now);
  }
  return readResultBody(body, properties, now);
}

/**
 * Reads a result's parsed body, as `readResult` does (one of a `warren.results` message's
 * results has no properties of its own: pass `{}`).
 */
export function readResultBody(
  body: unknown,
  properties: ResultProperties,
  now = new Date().toISOString(),
): ResultReading {
  // What Warren's own workers send, whole: read as it is (the tolerant reading below, with its
  // defaults and date normalising, costs twice as much per result).
  const whole = v.safeParse(schemas.TaskResult, body);
  if (whole.success && (whole.output.state !== 'failed' || whole.output.failure !== null))
    return { kind: 'result', result: whole.output };
  const parsed = v.safeParse(schemas.ResultBody, body);
  if (!parsed.success) return unreadable(body, properties, describe(parsed.issues[0]), now);
  return { kind: 'result', result: complete(parsed.output, now) };
}

type Body = v.InferOutput<typeof schemas.ResultBody>;

/** The result a read body stands for: the defaults that depend on other fields filled in. */
function complete(body: Body, now: string): TaskResult {
  const failure = body.state === 'failed' ? (body.failure ?? classOf(body)) : null;
  const finishedAt = body.finishedAt ?? now;
  return {
    v: body.v,
    run: body.run,
    phase: body.phase,
    task: body.task,
    attempt: body.attempt,
    state: body.state,
    failure,
    reason: body.reason ?? (failure === null ? null : reasonOf(failure, body)),
    worker: body.worker,
    host: body.host,
    // With no start given the attempt took no time, rather than ending before it started.
    startedAt: body.startedAt ?? finishedAt,
    finishedAt,
    exitCode: body.exitCode,
    signal: body.signal,
    stdoutTail: body.stdoutTail,
    stderrTail: body.stderrTail,
    logs: body.logs,
    ...(body.uploaded ? { uploaded: body.uploaded } : {}),
    ...(body.uploadMs != null ? { uploadMs: body.uploadMs } : {}),
    ...(body.spawned ? { spawned: body.spawned } : {}),
  };
}

/**
 * The class of a failed result that gives none: `exit` for a command that exited non-zero,
 * `signal` for one a signal killed, else `exit` all the same (the client said the attempt
 * failed and no more: most likely its command did).
 */
function classOf(body: Body): AnyFailureClass {
  if (body.exitCode !== null && body.exitCode > 0) return 'exit';
  return body.signal ? 'signal' : 'exit';
}

/** The reason of a failed result that gives none, in the worker's words (`exit 3`). */
function reasonOf(failure: AnyFailureClass, body: Body): string {
  if (body.signal)
    return `killed by ${body.signal}${body.exitCode === null ? '' : ` (exit ${body.exitCode})`}`;
  if (body.exitCode !== null) return `exit ${body.exitCode}`;
  return `class ${failure}, no reason given`;
}

/** One validation issue in a line: `exitCode: expected number, got "zero"`. */
function describe(issue: v.GenericIssue): string {
  const path = v.getDotPath(issue) ?? 'body';
  const why =
    issue.received === 'undefined'
      ? `${path}: missing`
      : issue.kind === 'schema'
        ? `${path}: expected ${issue.expected}, got ${issue.received}`
        : `${path}: ${issue.message}, got ${issue.received}`;
  return why.length > MAX_WHY ? `${why.slice(0, MAX_WHY - 3)}...` : why;
}

/**
 * A result that could not be read, as its attempt's failure; junk when it names no attempt.
 * Run, task and attempt come from the body where it has them right, else from the properties.
 * The phase is not needed (the phase matches by run, task and attempt): empty when absent.
 */
function unreadable(
  body: unknown,
  properties: ResultProperties,
  why: string,
  now: string,
): ResultReading {
  const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
  const run = [fields.run, properties.correlationId]
    .map(text)
    .find((value) => value !== undefined && RUN_ID_PATTERN.test(value));
  const ids = attemptOf(fields) ?? attemptOf(messageIdOf(properties.messageId));
  if (!run || !ids)
    return { kind: 'junk', reason: `a result that names no run, task and attempt (${why})` };
  const reason =
    fields.v === undefined || fields.v === PROTOCOL_VERSION
      ? `the result could not be read: ${why}`
      : `the result could not be read: protocol version ${JSON.stringify(fields.v)}, this Warren speaks ${PROTOCOL_VERSION}`;
  const result = failedResult(
    { run, phase: text(fields.phase) ?? '', task: ids.task, attempt: ids.attempt },
    {
      failure: 'unreadable',
      reason,
      worker: text(fields.worker) ?? '',
      host: text(fields.host) ?? '',
      startedAt: now,
      finishedAt: now,
    },
  );
  return { kind: 'unreadable', result, reason };
}

function attemptOf(fields: Record<string, unknown>): { task: string; attempt: number } | undefined {
  const { task, attempt } = fields;
  if (typeof task !== 'string' || !TASK_ID.test(task)) return undefined;
  if (typeof attempt !== 'number' || !Number.isInteger(attempt) || attempt < 1) return undefined;
  return { task, attempt };
}

/** `<task>.<attempt>`, as Warren's worker sets `messageId`, as fields. */
function messageIdOf(messageId: unknown): Record<string, unknown> {
  const match = typeof messageId === 'string' ? MESSAGE_ID.exec(messageId) : null;
  return match ? { task: match[1], attempt: Number(match[2]) } : {};
}
