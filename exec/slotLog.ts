import { closeSync, fstatSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeDirs } from '../shared/dirs.js';
import { describeSystemError, InfraError } from '../shared/errors.js';
import type { LogSpan, TaskMessage, TaskResult } from '../shared/protocol.js';
import { statePaths } from '../shared/statePaths.js';
import { readTail } from './tail.js';

/** Bytes of stdout and stderr kept in a result; the full output stays in the log files. */
export const TAIL_BYTES = 4096;

/** Where one task's output goes, and where it starts. */
export interface TaskLogStart {
  readonly stdoutPath: string;
  readonly stderrPath: string;
  /** The line the launcher writes to both files before the task's output. */
  readonly header: string;
  readonly stdoutStart: number;
  readonly stderrStart: number;
}

interface LogFile {
  readonly fd: number;
  readonly file: string;
  readonly path: string;
  /** Size after the last task, as seen by fstat. */
  size: number;
}

interface OpenLog {
  readonly run: string;
  readonly out: LogFile;
  readonly err: LogFile;
}

/**
 * A slot's log files for the run it is working on. Each task's stdout and stderr are appended
 * to the slot's `.out` and `.err` (after a `### warren <task> ...` line, for people reading
 * the files), and the result records the byte span, so a run of a million tasks makes a few
 * files instead of two million (file creation is the slow part on most disks and on NFS).
 */
export class SlotLog {
  private current: OpenLog | undefined;

  constructor(
    readonly stateDir: string,
    private readonly slot: string,
  ) {}

  /**
   * Where the task's output will start. The launcher writes the header line itself, so that
   * nothing but the command's own start stands between two tasks of a slot.
   */
  begin(task: TaskMessage): TaskLogStart {
    const log = this.open(task.run);
    const firstLine = task.command.split('\n', 1)[0] ?? '';
    const header = `### warren ${task.task} attempt ${task.attempt} [${task.phase}] ${firstLine}`;
    const length = Buffer.byteLength(header) + 1;
    return {
      stdoutPath: log.out.path,
      stderrPath: log.err.path,
      header,
      stdoutStart: log.out.size + length,
      stderrStart: log.err.size + length,
    };
  }

  finish(start: TaskLogStart): Pick<TaskResult, 'logs' | 'stdoutTail' | 'stderrTail'> {
    const log = this.current;
    if (!log) return { logs: null, stdoutTail: '', stderrTail: '' };
    const outEnd = fstatSync(log.out.fd).size;
    const errEnd = fstatSync(log.err.fd).size;
    log.out.size = outEnd;
    log.err.size = errEnd;
    const stdout: LogSpan = { file: log.out.file, start: start.stdoutStart, end: outEnd };
    const stderr: LogSpan = { file: log.err.file, start: start.stderrStart, end: errEnd };
    return {
      logs: { stdout, stderr },
      stdoutTail: readTail(log.out.fd, stdout.start, stdout.end, TAIL_BYTES),
      stderrTail: readTail(log.err.fd, stderr.start, stderr.end, TAIL_BYTES),
    };
  }

  close(): void {
    if (!this.current) return;
    closeSync(this.current.out.fd);
    closeSync(this.current.err.fd);
    this.current = undefined;
  }

  private open(run: string): OpenLog {
    if (this.current?.run === run) return this.current;
    this.close();
    const file = (stream: 'out' | 'err') => {
      const relative = statePaths.slotLog(run, this.slot, stream);
      const path = join(this.stateDir, relative);
      try {
        makeDirs(dirname(path));
        const fd = openSync(path, 'a+');
        return { fd, file: relative, path, size: fstatSync(fd).size };
      } catch (error) {
        throw new InfraError(
          'LOG_UNWRITABLE',
          `cannot open task log \`${path}\`: ${describeSystemError(error)}`,
          { cause: error },
        );
      }
    };
    this.current = { run, out: file('out'), err: file('err') };
    return this.current;
  }
}
