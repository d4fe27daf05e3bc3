import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../../shared/errors.js';
import type { LogSpan } from '../../shared/protocol.js';
import { statePaths } from '../../shared/statePaths.js';
import { openablePath } from './formatStatus.js';
import { runStatus, type TaskStatus } from './status.js';

const POLL_MS = 500;

/**
 * The task a person means: an id prefix (4 or more hex digits), or else a piece of its
 * command. Exactly one task must match.
 */
export function findTask(tasks: readonly TaskStatus[], query: string): TaskStatus {
  const byId = /^[0-9a-f]{4,16}$/.test(query)
    ? tasks.filter((task) => task.id.startsWith(query))
    : [];
  const matches = byId.length > 0 ? byId : tasks.filter((task) => task.command.includes(query));
  if (matches.length === 1) return matches[0] as TaskStatus;
  if (matches.length === 0) {
    throw new InputError(
      'NO_SUCH_TASK',
      `no task of the run has an id starting with, or a command containing, \`${query}\``,
    );
  }
  const listed = matches
    .slice(0, 5)
    .map(
      (task) =>
        `${task.id} ${task.command.length > 50 ? `${task.command.slice(0, 47)}...` : task.command}`,
    )
    .join('; ');
  throw new InputError(
    'AMBIGUOUS_TASK',
    `\`${query}\` matches ${matches.length} tasks (${listed}${matches.length > 5 ? '; ...' : ''}): give more of the id or command`,
  );
}

/** Bytes [start, end) of a file, or up to its end when `end` is undefined. */
function readBytes(path: string, start: number, end?: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const last = Math.min(end ?? Number.POSITIVE_INFINITY, fstatSync(fd).size);
    if (last <= start) return Buffer.alloc(0);
    const buffer = Buffer.alloc(last - start);
    readSync(fd, buffer, 0, buffer.length, start);
    return buffer;
  } finally {
    closeSync(fd);
  }
}

/** Where a running attempt's output starts in its slot's files: after its header line. */
function runningStart(path: string, header: string): number | undefined {
  const text = readBytes(path, 0);
  const at = text.lastIndexOf(header);
  if (at < 0) return undefined;
  const newline = text.indexOf(10, at);
  return newline < 0 ? undefined : newline + 1;
}

/** Cuts at the next task's header in a slot file: what follows is another task's. */
function upToNextTask(bytes: Buffer): { bytes: Buffer; ended: boolean } {
  const at = bytes.indexOf('### warren ');
  const cut = at === 0 || (at > 0 && bytes[at - 1] === 10) ? at : -1;
  return cut < 0 ? { bytes, ended: false } : { bytes: bytes.subarray(0, cut), ended: true };
}

interface Streams {
  out(bytes: Buffer): void;
  err(bytes: Buffer): void;
}

/**
 * `tasker logs`: a task's full stdout and stderr (its latest attempt), from the slot log files
 * in the state dir; with `follow`, what a running task writes, until it ends.
 */
export async function showLogs(options: {
  readonly stateDir: string;
  readonly run: string;
  readonly query: string;
  readonly follow: boolean;
  readonly streams: Streams;
  /** Said once when the task has not started (yet), or wrote nothing. */
  readonly note: (line: string) => void;
  /** Where the reader is: paths in messages are given so that they open from there. */
  readonly cwd: string;
}): Promise<TaskStatus> {
  const { stateDir, run, streams } = options;
  const shown = (path: string) => openablePath(path, { stateDir, cwd: options.cwd });
  let task = findTask((await runStatus(stateDir, run)).tasks, options.query);
  const refresh = async () => {
    const found = (await runStatus(stateDir, run)).tasks.find((other) => other.id === task.id);
    if (found) task = found;
  };
  /** The slot log holding a span: here, and long enough, or said why not. */
  const spanFile = (span: LogSpan): string => {
    const path = join(stateDir, span.file);
    if (!existsSync(path)) {
      throw new InputError(
        'LOG_NOT_HERE',
        `task ${task.id}'s log is not in this state dir: no \`${shown(path)}\` (it ran on ${task.worker ?? 'a worker'}: the file was removed, or that worker keeps its logs in another state dir)`,
      );
    }
    const size = statSync(path).size;
    if (size < span.end) {
      throw new InputError(
        'LOG_CUT',
        `task ${task.id}'s output ends at byte ${span.end} of \`${shown(path)}\`, which holds ${size} bytes: the file was cut or replaced`,
      );
    }
    return path;
  };
  const ended = (logs: { stdout: LogSpan; stderr: LogSpan }) => {
    const files = { out: spanFile(logs.stdout), err: spanFile(logs.stderr) };
    if (logs.stdout.end <= logs.stdout.start && logs.stderr.end <= logs.stderr.start) {
      options.note(
        `task ${task.id} wrote no output (to \`${shown(files.out)}\` or \`${shown(files.err)}\`)`,
      );
      return;
    }
    streams.out(readBytes(files.out, logs.stdout.start, logs.stdout.end));
    streams.err(readBytes(files.err, logs.stderr.start, logs.stderr.end));
  };
  if (task.logs && task.state !== 'running') {
    ended(task.logs);
    return task;
  }
  if (task.state === 'succeeded' || task.state === 'failed') {
    options.note(
      `task ${task.id} ${task.state}, but its result names no log file (from a worker that keeps none?)`,
    );
    return task;
  }
  if (task.state !== 'running') {
    options.note(
      `task ${task.id} is ${task.state}: no output yet${options.follow ? '; waiting for it to start' : ''}`,
    );
    if (!options.follow) return task;
    const stateNow = (): TaskStatus['state'] => task.state;
    while (stateNow() !== 'running' && !task.logs) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS * 2));
      await refresh();
    }
    if (task.logs && stateNow() !== 'running') {
      ended(task.logs);
      return task;
    }
  }
  // Running: its output so far, from the header line its slot wrote before it.
  const slot = task.worker as string;
  const header = `### warren ${task.id} attempt ${task.attempts} `;
  const files = {
    out: join(stateDir, statePaths.slotLog(run, slot, 'out')),
    err: join(stateDir, statePaths.slotLog(run, slot, 'err')),
  };
  if (!existsSync(files.out) && !existsSync(files.err) && !options.follow) {
    throw new InputError(
      'LOG_NOT_HERE',
      `task ${task.id} runs on ${slot}, whose log is not in this state dir: no \`${shown(files.out)}\` (the file was removed, or that worker keeps its logs in another state dir)`,
    );
  }
  const at = { out: runningStart(files.out, header), err: runningStart(files.err, header) };
  const pump = (stream: 'out' | 'err', end?: number) => {
    const start = at[stream];
    if (start === undefined) {
      at[stream] = runningStart(files[stream], header);
      return;
    }
    const { bytes } =
      end === undefined
        ? upToNextTask(readBytes(files[stream], start))
        : { bytes: readBytes(files[stream], start, end) };
    if (bytes.length === 0) return;
    streams[stream](bytes);
    at[stream] = start + bytes.length;
  };
  pump('out');
  pump('err');
  if (!options.follow) return task;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    await refresh();
    if (task.state !== 'running' && task.logs) {
      // Ended before any of it was seen here: all of it, or why not.
      if (at.out === undefined && at.err === undefined) {
        ended(task.logs);
        return task;
      }
      // Ended: the rest, up to where its result says its output stops.
      pump('out', task.logs.stdout.end);
      pump('err', task.logs.stderr.end);
      return task;
    }
    if (task.state !== 'running') return task;
    pump('out');
    pump('err');
  }
}
