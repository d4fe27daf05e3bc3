import { readFileSync, rmSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { S3Settings } from '../shared/config/s3.js';
import { makeDirs } from '../shared/dirs.js';
import { formatDuration } from '../shared/duration.js';
import { failedResult } from '../shared/failedResult.js';
import { PROTOCOL_VERSION, type TaskMessage, type TaskResult } from '../shared/protocol.js';
import { s3Client, uploadOutputs } from '../shared/s3.js';
import { statePaths } from '../shared/statePaths.js';
import type { LaunchEnd, Launcher } from './launcher.js';
import type { OomCounter } from './oom.js';
import type { SlotLog } from './slotLog.js';

/** Where and as whom a task runs. */
export interface TaskContext {
  readonly launcher: Launcher;
  /** Directory a task without its own `workdir` runs in (the worker's --workdir). */
  readonly workdir: string;
  /** The slot's log files, in the state dir's `runs/<run>/logs`. */
  readonly log: SlotLog;
  /** Name of this worker slot, recorded with the result (`local-1`, `worker-7f9c-2`). */
  readonly worker: string;
  readonly host: string;
  /** The cgroup's OOM-kill counter, where there is one: tells OOM kills from other SIGKILLs. */
  readonly oom?: OomCounter | undefined;
  /** Where outputs go after success; absent: no bucket configured. */
  readonly uploads?: Uploads | undefined;
}

/** S3 uploads of a slot (one client per process, made on first use). */
export interface Uploads {
  readonly settings: S3Settings | undefined;
  /** Globs added to every task's own (`worker --upload`). */
  readonly globs: readonly string[];
  /** Never uploaded from: the state dir. */
  readonly exclude: string;
  /** Files this process uploaded (path to mtime and size), shared by its slots. */
  readonly seen: Map<string, string>;
  client(): Promise<S3Client>;
}

/** Uploads for the slots of one process: the S3 client is made once, when first needed. */
export function uploadsFor(
  settings: S3Settings | undefined,
  globs: readonly string[],
  exclude: string,
): Uploads {
  let client: Promise<S3Client> | undefined;
  return {
    settings,
    globs,
    exclude,
    seen: new Map(),
    client: () => {
      if (!settings) throw new Error('no bucket');
      client ??= s3Client(settings);
      return client;
    },
  };
}

const signalNames = new Map(
  Object.entries(constants.signals).map(([name, number]) => [number, name]),
);
/**
 * Runs one task to its end and describes how it went. This is the one place that runs a
 * command, used alike by the local pool, the tasker's serial steps and the worker. A failing
 * command is a failed result, never an exception.
 */
export async function runTask(task: TaskMessage, context: TaskContext): Promise<TaskResult> {
  const startedAt = new Date();
  try {
    const result = await attempt(task, context, startedAt);
    return result.state === 'succeeded' ? await upload(task, context, result) : result;
  } catch (error) {
    // Not the command's fault: a log file or directory of the worker's own failed. The attempt
    // fails (and is retried, perhaps elsewhere); the worker goes on.
    return failedResult(task, {
      failure: 'infra',
      reason: `the worker could not run it: ${error instanceof Error ? error.message : String(error)}`,
      worker: context.worker,
      host: context.host,
      startedAt: startedAt.toISOString(),
    });
  }
}

/**
 * Uploads the outputs of a task that succeeded; a failed upload fails the task (class `upload`),
 * since its outputs would be lost otherwise.
 */
async function upload(
  task: TaskMessage,
  context: TaskContext,
  result: TaskResult,
): Promise<TaskResult> {
  const globs = [...new Set([...(task.upload ?? []), ...(context.uploads?.globs ?? [])])];
  if (globs.length === 0) return result;
  const uploads = context.uploads;
  const failed = (reason: string): TaskResult => ({
    ...result,
    state: 'failed',
    failure: 'upload',
    reason,
    finishedAt: new Date().toISOString(),
  });
  if (!uploads?.settings) {
    return failed(
      `its outputs (${globs.join(', ')}) were not uploaded: no bucket is set where it ran (S3_BUCKET or --bucket)`,
    );
  }
  const began = Date.now();
  try {
    const uploaded = await uploadOutputs({
      client: await uploads.client(),
      settings: uploads.settings,
      run: task.run,
      workdir:
        task.workdir === undefined ? context.workdir : resolve(context.workdir, task.workdir),
      globs,
      since: Date.parse(result.startedAt),
      exclude: uploads.exclude,
      seen: uploads.seen,
    });
    return {
      ...result,
      uploaded,
      uploadMs: Date.now() - began,
      finishedAt: new Date().toISOString(),
    };
  } catch (error) {
    return failed(`upload failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

async function attempt(
  task: TaskMessage,
  context: TaskContext,
  startedAt: Date,
): Promise<TaskResult> {
  const log = context.log.begin(task);
  // What the task writes to this file becomes new tasks of its phase. The file is made by the
  // task (`>>` creates it) and removed after it: no file I/O per task for tasks that spawn none.
  const spawnFile = statePaths.spawnFile(context.log.stateDir, task.run, context.worker);
  if (!readySpawnFiles.has(spawnFile)) {
    makeDirs(dirname(spawnFile));
    rmSync(spawnFile, { force: true }); // left by a slot that died with its task
    readySpawnFiles.add(spawnFile);
  }
  const oomBefore = context.oom?.lastRead;
  const end = await context.launcher.run({
    command: task.command,
    workdir: task.workdir === undefined ? context.workdir : resolve(context.workdir, task.workdir),
    env: {
      WARREN_RUN_ID: task.run,
      WARREN_PHASE: task.phase,
      WARREN_TASK_ID: task.task,
      WARREN_ATTEMPT: String(task.attempt),
      WARREN_SPAWN: spawnFile,
      WARREN_WORKER: context.worker,
    },
    stdoutPath: log.stdoutPath,
    stderrPath: log.stderrPath,
    header: log.header,
    timeoutMs: task.timeoutMs,
  });
  const ended = describeEnd(end, task.timeoutMs);
  // Only a failure can be an OOM kill: the counter is read then, and only then.
  const outcome =
    ended.state === 'succeeded' ? ended : oomOrNot(ended, oomBefore, context.oom?.read());
  // Only a task that succeeded adds tasks: a failed attempt may have written half its list.
  const spawned = readSpawned(spawnFile, outcome.state === 'succeeded');
  return {
    v: PROTOCOL_VERSION,
    run: task.run,
    phase: task.phase,
    task: task.task,
    attempt: task.attempt,
    ...outcome,
    worker: context.worker,
    host: context.host,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    ...context.log.finish(log),
    ...(spawned.length > 0 ? { spawned } : {}),
  };
}

/** Spawn files whose directory this process made (one per slot and run). */
const readySpawnFiles = new Set<string>();

/** At most this many spawned commands per task, and this many bytes of them. */
export const SPAWN_LIMIT = { lines: 10_000, bytes: 1024 * 1024 } as const;

/**
 * The commands a task wrote to its spawn file: one per line, blank lines and `#` comments
 * skipped, within SPAWN_LIMIT (the rest is dropped: the result must stay a small message).
 */
function readSpawned(path: string, take: boolean): string[] {
  // Most tasks spawn nothing: ask without an exception (a failed read's error object cost 7%
  // of a worker's CPU on short tasks).
  if (!statSync(path, { throwIfNoEntry: false })) return [];
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return []; // the task removed it meanwhile, or made something unreadable
  }
  rmSync(path, { force: true });
  if (!take) return [];
  const commands: string[] = [];
  let bytes = 0;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    bytes += Buffer.byteLength(line);
    if (commands.length >= SPAWN_LIMIT.lines || bytes > SPAWN_LIMIT.bytes) break;
    commands.push(line);
  }
  return commands;
}

type Outcome = Pick<TaskResult, 'state' | 'failure' | 'reason' | 'exitCode' | 'signal'>;

/**
 * A task that died of SIGKILL (or took its slot's shell with it) while the cgroup's OOM-kill
 * count went up was killed by the OOM killer.
 */
function oomOrNot(
  outcome: Outcome,
  before: number | undefined,
  after: number | undefined,
): Outcome {
  const killed = outcome.signal === 'SIGKILL' || outcome.failure === 'lost';
  if (
    before === undefined ||
    after === undefined ||
    after <= before ||
    !killed ||
    outcome.failure === 'timeout'
  )
    return outcome;
  return {
    ...outcome,
    failure: 'oom',
    reason: `killed by the kernel's OOM killer (the memory limit of its container or cgroup; exit ${outcome.exitCode ?? 'none'})`,
  };
}

/** Turns how the shell ended into an outcome value. */
export function describeEnd(end: LaunchEnd, timeoutMs: number): Outcome {
  switch (end.kind) {
    case 'exited': {
      if (end.status === 0) {
        return { state: 'succeeded', failure: null, reason: null, exitCode: 0, signal: null };
      }
      // The shell reports a command killed by signal N as 128+N.
      const signal = end.status > 128 ? signalNames.get(end.status - 128) : undefined;
      if (signal) {
        return {
          state: 'failed',
          failure: 'signal',
          reason: `killed by ${signal} (exit ${end.status})`,
          exitCode: end.status,
          signal,
        };
      }
      return {
        state: 'failed',
        failure: 'exit',
        reason: `exit ${end.status}`,
        exitCode: end.status,
        signal: null,
      };
    }
    case 'stopped':
      return end.why === 'timeout'
        ? {
            state: 'failed',
            failure: 'timeout',
            reason: `timed out after ${formatDuration(timeoutMs)} (stopped with ${end.signal})`,
            exitCode: null,
            signal: end.signal,
          }
        : {
            state: 'cancelled',
            failure: null,
            reason: `cancelled (stopped with ${end.signal})`,
            exitCode: null,
            signal: end.signal,
          };
    case 'lost':
      return { state: 'failed', failure: 'lost', reason: end.detail, exitCode: null, signal: null };
  }
}
