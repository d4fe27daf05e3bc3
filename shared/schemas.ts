import { z } from 'zod';
import { FAILURE_CLASSES, PROTOCOL_VERSION, RUN_ID_PATTERN } from './protocol.js';

/**
 * The zod schemas of the message contract, used where messages cross a process boundary
 * (the broker). Types come from here too (see protocol.ts); code that only needs the types
 * does not load zod.
 */

/** A task id: 16 lowercase hex digits of a content hash, stable across restarts. */
export const TaskId = z.string().regex(/^[0-9a-f]{16}$/, 'a task id is 16 hex digits');

export const RunId = z
  .string()
  .regex(RUN_ID_PATTERN, 'a run id is 1-64 letters, digits, ., _ or -');

export const TaskMessage = z.object({
  v: z.literal(PROTOCOL_VERSION),
  run: RunId,
  phase: z.string().min(1),
  task: TaskId,
  attempt: z.number().int().min(1),
  command: z.string().min(1),
  /** Absolute, or relative to the worker's --workdir; absent means the worker's --workdir. */
  workdir: z.string().optional(),
  /** Milliseconds; 0 means no timeout. */
  timeoutMs: z.number().int().min(0).default(0),
  /** Globs, relative to the working directory, of outputs to upload to S3 after success. */
  upload: z.array(z.string().min(1)).max(100).optional(),
});

/** An object uploaded to S3 (key in the worker's bucket). */
export const UploadedObject = z.object({
  key: z.string().min(1),
  size: z.number().int().min(0),
  checksum: z.string(),
});

/** Bytes [start, end) of a log file; `file` is relative to the state dir. */
export const LogSpan = z.object({
  file: z.string(),
  start: z.number().int().min(0),
  end: z.number().int().min(0),
});

export const TaskResult = z.object({
  v: z.literal(PROTOCOL_VERSION),
  run: RunId,
  phase: z.string().min(1),
  task: TaskId,
  attempt: z.number().int().min(1),
  state: z.enum(['succeeded', 'failed', 'cancelled']),
  failure: z.enum(FAILURE_CLASSES).nullable(),
  /** One line for people: `exit 1`, `killed by SIGKILL`, `timed out after 30s`. */
  reason: z.string().nullable(),
  worker: z.string(),
  host: z.string(),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  stdoutTail: z.string(),
  stderrTail: z.string(),
  /** Where the attempt's full output is: byte spans of its slot's log files. */
  logs: z.object({ stdout: LogSpan, stderr: LogSpan }).nullable(),
  /** Outputs uploaded after the command succeeded. */
  uploaded: z.array(UploadedObject).optional(),
  /** How long the uploads took, in ms (within finishedAt - startedAt). */
  uploadMs: z.number().int().min(0).optional(),
  /** Commands the task wrote to `WARREN_SPAWN`: new tasks for its phase. */
  spawned: z.array(z.string().min(1)).max(10_000).optional(),
});
