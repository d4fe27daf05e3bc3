import * as v from 'valibot';
import { type AnyFailureClass, PROTOCOL_VERSION, RUN_ID_PATTERN } from './contract.js';

/**
 * The valibot schemas of the message contract, used where messages cross a process boundary
 * (the broker). The types are inferred from them in protocol.ts; code that only needs the
 * types imports those and does not load valibot. (valibot, not zod: it is one module, loaded
 * in ~15 ms where zod's hundred files took ~90 ms of every tasker's and worker's start.)
 */

const nonEmpty = v.pipe(v.string(), v.minLength(1));
const count = (min: number) =>
  v.pipe(v.number(), v.integer('expected an integer'), v.minValue(min, `expected at least ${min}`));
const timestamp = v.pipe(v.string(), v.isoTimestamp());

/** A task id: 16 lowercase hex digits of a content hash, stable across restarts. */
export const TaskId = v.pipe(v.string(), v.regex(/^[0-9a-f]{16}$/, 'a task id is 16 hex digits'));

export const RunId = v.pipe(
  v.string(),
  v.regex(
    RUN_ID_PATTERN,
    'a run id is 1 to 64 letters, digits, ., _ or -, starting with a letter or digit',
  ),
);

/** What each task of a message says, besides the protocol version and the run. */
const TaskFields = {
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
  /**
   * The size class the tasker published the task to (its queue is that class's); absent means
   * `default`. Workers need not read it: the queue they consume is their class.
   */
  class: v.optional(v.string()),
};

export const TaskMessage = v.object({
  v: v.literal(PROTOCOL_VERSION),
  run: RunId,
  ...TaskFields,
});

/** Most tasks one batch message may carry (the tasker sends far fewer: docs/protocol.md). */
export const MAX_BATCH = 1000;

/**
 * Several tasks of one run in one message (type `warren.batch`): short tasks travel this way,
 * each still its own attempt with its own result.
 */
export const TaskBatch = v.object({
  v: v.literal(PROTOCOL_VERSION),
  run: RunId,
  tasks: v.pipe(
    v.array(v.object(TaskFields)),
    v.minLength(1, 'a batch has at least one task'),
    v.maxLength(MAX_BATCH, `a batch has at most ${MAX_BATCH} tasks`),
  ),
});

/**
 * Several results in one message (type `warren.results`), each read as a result on its own
 * would be (`ResultBody`): one that cannot be read does not spoil the others.
 */
export const ResultBatch = v.object({
  v: v.literal(PROTOCOL_VERSION),
  run: RunId,
  results: v.pipe(v.array(v.unknown()), v.minLength(1), v.maxLength(MAX_BATCH)),
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

/**
 * A failure class: one of contract.ts's, or a newer or foreign worker's (kept as given). A name,
 * not a sentence: it is a metrics label and a column of the ledger.
 */
const FailureName = v.pipe(
  v.string(),
  v.minLength(1, 'expected a failure class'),
  v.maxLength(64, 'a failure class is at most 64 characters'),
  v.transform((name): AnyFailureClass => name),
);

const ResultState = v.picklist(['succeeded', 'failed', 'cancelled']);
const ExitCode = v.pipe(v.number(), v.integer('expected an integer'));
const Logs = v.object({ stdout: LogSpan, stderr: LogSpan });
const Uploaded = v.array(UploadedObject);
const Spawned = v.pipe(v.array(nonEmpty), v.maxLength(10_000));

/**
 * A result as Warren's worker writes it and as the tasker holds it once read: every field there.
 * A result on the wire is read with `ResultBody`, which lets a client leave fields out.
 */
export const TaskResult = v.object({
  v: v.literal(PROTOCOL_VERSION),
  run: RunId,
  phase: nonEmpty,
  task: TaskId,
  attempt: count(1),
  state: ResultState,
  failure: v.nullable(FailureName),
  /** One line for people: `exit 1`, `killed by SIGKILL`, `timed out after 30s`. */
  reason: v.nullable(v.string()),
  worker: v.string(),
  host: v.string(),
  startedAt: timestamp,
  finishedAt: timestamp,
  exitCode: v.nullable(ExitCode),
  signal: v.nullable(v.string()),
  stdoutTail: v.string(),
  stderrTail: v.string(),
  /** Where the attempt's full output is: byte spans of its slot's log files. */
  logs: v.nullable(Logs),
  /** Outputs uploaded after the command succeeded. */
  uploaded: v.optional(Uploaded),
  /** How long the uploads took, in ms (within finishedAt - startedAt). */
  uploadMs: v.optional(count(0)),
  /** Commands the task wrote to `WARREN_SPAWN`: new tasks for its phase. */
  spawned: v.optional(Spawned),
});

/**
 * A date and time as a client in any language writes one (ISO 8601, with or without a zone,
 * fractions of any length), held as JavaScript's ISO form.
 */
const LooseTimestamp = v.pipe(
  v.string(),
  v.check(
    (text) => /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(text) && !Number.isNaN(Date.parse(text)),
    'expected an ISO 8601 date and time',
  ),
  v.transform((text) => new Date(text).toISOString()),
);

/**
 * A result as the tasker reads it off the wire (docs/protocol.md, "Reading a result"): the
 * fields the tasker cannot do without are required; every other one may be absent or null and
 * takes its default (readResult.ts fills in those that depend on others). Whatever is present
 * must have its type. Unknown fields are ignored.
 */
export const ResultBody = v.object({
  v: v.literal(PROTOCOL_VERSION),
  run: RunId,
  phase: nonEmpty,
  task: TaskId,
  attempt: count(1),
  state: ResultState,
  failure: v.nullish(FailureName),
  reason: v.nullish(v.string()),
  worker: v.nullish(v.string(), ''),
  host: v.nullish(v.string(), ''),
  startedAt: v.nullish(LooseTimestamp),
  finishedAt: v.nullish(LooseTimestamp),
  exitCode: v.nullish(ExitCode, null),
  signal: v.nullish(v.string(), null),
  stdoutTail: v.nullish(v.string(), ''),
  stderrTail: v.nullish(v.string(), ''),
  logs: v.nullish(Logs, null),
  uploaded: v.nullish(Uploaded),
  uploadMs: v.nullish(count(0)),
  spawned: v.nullish(Spawned),
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

/**
 * A worker gave tasks of a run back to the queue unrun: it cannot see the run in its state dir
 * (no stamp there, or another one), so it does not share the run's working directory. Read
 * tolerantly: only `run`, `worker` and `tasks` are needed.
 */
export const GivenBack = v.object({
  v: v.literal(PROTOCOL_VERSION),
  run: RunId,
  worker: nonEmpty,
  host: v.optional(v.string(), ''),
  /** The worker's working directory and state dir, as it sees them. */
  workdir: v.optional(v.string(), ''),
  stateDir: v.optional(v.string(), ''),
  /** When the worker gave them back. */
  at: v.optional(timestamp),
  /** The attempts given back, `[task, attempt]`; items after the second are ignored. */
  tasks: v.pipe(v.array(v.looseTuple([TaskId, count(1)])), v.maxLength(MAX_BATCH)),
});

/** A control message: `cancel` a run, or `drain` (workers exit once idle). */
export const ControlMessage = v.variant('action', [
  v.object({ v: v.literal(PROTOCOL_VERSION), action: v.literal('cancel'), run: RunId }),
  v.object({ v: v.literal(PROTOCOL_VERSION), action: v.literal('drain') }),
]);
