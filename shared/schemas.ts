import * as v from 'valibot';
import { FAILURE_CLASSES, PROTOCOL_VERSION, RUN_ID_PATTERN } from './contract.js';

/**
 * The valibot schemas of the message contract, used where messages cross a process boundary
 * (the broker). The types are inferred from them in protocol.ts; code that only needs the
 * types imports those and does not load valibot. (valibot, not zod: it is one module, loaded
 * in ~15 ms where zod's hundred files took ~90 ms of every tasker's and worker's start.)
 */

const nonEmpty = v.pipe(v.string(), v.minLength(1));
const count = (min: number) => v.pipe(v.number(), v.integer(), v.minValue(min));
const timestamp = v.pipe(v.string(), v.isoTimestamp());

/** A task id: 16 lowercase hex digits of a content hash, stable across restarts. */
export const TaskId = v.pipe(v.string(), v.regex(/^[0-9a-f]{16}$/, 'a task id is 16 hex digits'));

export const RunId = v.pipe(
  v.string(),
  v.regex(RUN_ID_PATTERN, 'a run id is 1-64 letters, digits, ., _ or -'),
);

export const TaskMessage = v.object({
  v: v.literal(PROTOCOL_VERSION),
  run: RunId,
  phase: nonEmpty,
  task: TaskId,
  attempt: count(1),
  command: nonEmpty,
  /** Absolute, or relative to the worker's --workdir; absent means the worker's --workdir. */
  workdir: v.optional(v.string()),
  /** Milliseconds; 0 means no timeout. */
  timeoutMs: v.optional(count(0), 0),
  /** Globs, relative to the working directory, of outputs to upload to S3 after success. */
  upload: v.optional(v.pipe(v.array(nonEmpty), v.maxLength(100))),
});

/** An object a task's outputs were uploaded to (key in the worker's bucket). */
export const UploadedObject = v.object({
  key: nonEmpty,
  /** Bytes. */
  size: count(0),
  /** `sha256:<hex>` of the file's bytes, also stored as the object's `sha256` metadata. */
  checksum: v.string(),
});

/** Bytes [start, end) of a log file; `file` is relative to the state dir. */
export const LogSpan = v.object({
  file: v.string(),
  start: count(0),
  end: count(0),
});

export const TaskResult = v.object({
  v: v.literal(PROTOCOL_VERSION),
  run: RunId,
  phase: nonEmpty,
  task: TaskId,
  attempt: count(1),
  state: v.picklist(['succeeded', 'failed', 'cancelled']),
  failure: v.nullable(v.picklist(FAILURE_CLASSES)),
  /** One line for people: `exit 1`, `killed by SIGKILL`, `timed out after 30s`. */
  reason: v.nullable(v.string()),
  worker: v.string(),
  host: v.string(),
  startedAt: timestamp,
  finishedAt: timestamp,
  exitCode: v.nullable(v.pipe(v.number(), v.integer())),
  signal: v.nullable(v.string()),
  stdoutTail: v.string(),
  stderrTail: v.string(),
  /** Where the attempt's full output is: byte spans of its slot's log files. */
  logs: v.nullable(v.object({ stdout: LogSpan, stderr: LogSpan })),
  /** Outputs uploaded after the command succeeded. */
  uploaded: v.optional(v.array(UploadedObject)),
  /** How long the uploads took, in ms (within finishedAt - startedAt). */
  uploadMs: v.optional(count(0)),
  /** Commands the task wrote to `WARREN_SPAWN`: new tasks for its phase. */
  spawned: v.optional(v.pipe(v.array(nonEmpty), v.maxLength(10_000))),
});

/** A worker's notice that it started an attempt. */
export const StartedNotice = v.object({
  v: v.literal(PROTOCOL_VERSION),
  run: RunId,
  phase: v.string(),
  task: TaskId,
  attempt: count(1),
  worker: v.string(),
  host: v.string(),
  startedAt: timestamp,
});

/**
 * One attempt a lease lists: `[task, attempt, state]`, the state `held` (a delivery waiting for
 * a free slot) or `running`. Read tolerantly: a state this Warren does not know (or none, from a
 * foreign worker) still means the worker has the attempt, and items after the third are ignored.
 */
export const LeasedAttempt = v.looseTuple([TaskId, count(1), v.optional(v.string())]);

/**
 * A worker's lease on a run's attempts: every attempt of the run it holds or runs, sent once a
 * delivery of the run has been with it for a second and renewed every lease interval while
 * any is (docs/protocol.md).
 */
export const Lease = v.object({
  v: v.literal(PROTOCOL_VERSION),
  run: RunId,
  worker: nonEmpty,
  host: v.optional(v.string(), ''),
  /** When the worker sent it. */
  at: timestamp,
  /** The worker's lease interval, in ms: the next lease comes about this long after. */
  intervalMs: v.optional(count(1)),
  tasks: v.pipe(v.array(LeasedAttempt), v.maxLength(100_000)),
});

/** A control message: `cancel` a run, or `drain` (workers exit once idle). */
export const ControlMessage = v.variant('action', [
  v.object({ v: v.literal(PROTOCOL_VERSION), action: v.literal('cancel'), run: RunId }),
  v.object({ v: v.literal(PROTOCOL_VERSION), action: v.literal('drain') }),
]);
