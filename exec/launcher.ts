import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import split2 from 'split2';

/** One command for a launcher to run. */
export interface LaunchJob {
  readonly command: string;
  /** Absolute directory the command starts in. */
  readonly workdir: string;
  /** Variables added to the launcher's environment for this command only. */
  readonly env: Readonly<Record<string, string>>;
  /** Files the command's stdout and stderr are appended to. */
  readonly stdoutPath: string;
  readonly stderrPath: string;
  /** A line written to both files before the command starts (for people reading them). */
  readonly header: string;
  /** Milliseconds; 0 means none. */
  readonly timeoutMs: number;
}

/** How a launched command ended. */
export type LaunchEnd =
  /** The command finished; `status` is the shell's `$?` (128+N when killed by signal N). */
  | { readonly kind: 'exited'; readonly status: number }
  /** Warren stopped it: its time limit passed, or someone cancelled it. */
  | {
      readonly kind: 'stopped';
      readonly why: 'timeout' | 'cancel';
      readonly signal: NodeJS.Signals;
    }
  /** The slot's shell died under it (the command killed its parent, or the shell was killed). */
  | { readonly kind: 'lost'; readonly detail: string };

export interface LauncherOptions {
  /** Environment of the shell and so of every command, before each job's own variables. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Time between SIGTERM and SIGKILL when a command is stopped, in ms. */
  readonly graceMs: number;
  /** Called with each line the shell itself writes to stderr (its own errors, not the task's). */
  readonly onShellError?: (line: string) => void;
}

/** Process groups of live slot shells, killed if this process exits without closing them. */
const liveGroups = new Set<number>();
process.on('exit', () => {
  for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
});

interface Pending {
  readonly resolve: (end: LaunchEnd) => void;
  timer?: NodeJS.Timeout;
}

const POLL_MS = 20;
const EXIT_MARK = 'warren-exit ';

/**
 * One task slot: a long-lived `/bin/sh` that starts commands for us, one at a time.
 *
 * Forking from a small shell instead of from Node is what keeps per-task overhead close to
 * `xargs`: Node's spawn forks its whole (large) process and blocks until the child has exec'd.
 * The shell runs in a process group of its own, so stopping a task stops everything it
 * started, grandchildren included; the shell goes with it and the next task starts a fresh one.
 */
export class Launcher {
  private child: ChildProcess | undefined;
  private pending: Pending | undefined;
  private stopping:
    | { why: 'timeout' | 'cancel'; signal: NodeJS.Signals; done: Promise<void> }
    | undefined;

  constructor(private readonly options: LauncherOptions) {}

  /** Runs one command; resolves when it and everything it started have ended. */
  run(job: LaunchJob): Promise<LaunchEnd> {
    if (this.pending) throw new Error('a launcher runs one command at a time');
    const child = this.ensureShell();
    return new Promise<LaunchEnd>((resolve) => {
      this.pending = { resolve };
      if (job.timeoutMs > 0) {
        this.pending.timer = setTimeout(() => void this.stop('timeout'), job.timeoutMs);
      }
      const header = quoted(job.header);
      const exports = Object.entries(job.env)
        .map(([key, value]) => `export ${key}=${quoted(value)} && `)
        .join('');
      // The command runs in a subshell of ours, parsed there by `eval` as `sh -c` would parse it
      // (it is one quoted word to the slot's shell, so no text can break the script around it):
      // one fork, and one exec only when it is not a builtin. A command that asks which shell
      // it is in (`$$`, `$PPID`, `$0`) has the subshell exec a /bin/sh of its own instead.
      const command = needsOwnShell(job.command)
        ? `exec /bin/sh -c ${quoted(job.command)}`
        : `eval ${quoted(job.command)}`;
      // One group, the log files opened once: the header lines (printf is a builtin), then the
      // subshell, which moves to the working directory and sets the task's variables for itself.
      const run = `( cd -- ${quoted(job.workdir)} && ${exports}${command} )`;
      const script =
        `{ printf '%s\\n' ${header}; printf '%s\\n' ${header} >&2; ${run} </dev/null; } ` +
        `>>${quoted(job.stdoutPath)} 2>>${quoted(job.stderrPath)}; echo "${EXIT_MARK}$?"\n`;
      child.stdin?.write(script);
    });
  }

  /**
   * Stops the running command and its process group: SIGTERM, then SIGKILL after `graceMs`.
   * Resolves once nothing of the group is left (or SIGKILL did not help within 2 s).
   */
  stop(why: 'timeout' | 'cancel', graceMs = this.options.graceMs): Promise<void> {
    if (this.stopping) return this.stopping.done;
    const child = this.child;
    if (!child?.pid || !this.pending) return Promise.resolve();
    const pgid = child.pid;
    const done = (async () => {
      signalGroup(pgid, 'SIGTERM');
      if (!(await groupGone(pgid, graceMs))) {
        if (this.stopping) this.stopping.signal = 'SIGKILL';
        signalGroup(pgid, 'SIGKILL');
        await groupGone(pgid, 2000);
      }
    })();
    this.stopping = { why, signal: 'SIGTERM', done };
    return done;
  }

  /** Ends the shell after the current command and kills anything the tasks left running. */
  async close(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.stdin?.end();
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  }

  private ensureShell(): ChildProcess {
    if (this.child) return this.child;
    // A plain spawn: this is one long-lived process talking over pipes, where execa's
    // conveniences (buffering, promise results) do not apply and its import costs ~100 ms.
    const child = spawn('/bin/sh', ['-s'], {
      env: this.options.env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child = child;
    const pgid = child.pid;
    if (pgid) liveGroups.add(pgid);
    child.on('error', (error) =>
      this.options.onShellError?.(`cannot start /bin/sh: ${error.message}`),
    );
    child.stdin?.on('error', () => {});
    child.stdout?.pipe(split2()).on('data', (line: string) => {
      if (!line.startsWith(EXIT_MARK)) return;
      this.settle({ kind: 'exited', status: Number(line.slice(EXIT_MARK.length)) });
    });
    child.stderr?.pipe(split2()).on('data', (line: string) => this.options.onShellError?.(line));
    child.on('exit', (exitCode, signal) => {
      if (this.child === child) this.child = undefined;
      const stopping = this.stopping;
      if (stopping) {
        // Wait for the rest of the group before saying the command is over; until then it
        // stays on the list of groups to kill should this process exit.
        void stopping.done.then(() => {
          if (pgid) liveGroups.delete(pgid);
          this.settle({ kind: 'stopped', why: stopping.why, signal: stopping.signal });
        });
        return;
      }
      if (pgid) {
        signalGroup(pgid, 'SIGKILL');
        liveGroups.delete(pgid);
      }
      const how = signal ? `killed by ${signal}` : `exit ${exitCode}`;
      this.settle({ kind: 'lost', detail: `the slot's shell died (${how})` });
    });
    return child;
  }

  private settle(end: LaunchEnd): void {
    const pending = this.pending;
    if (!pending) return;
    if (end.kind === 'exited' && this.stopping) return; // the kill wins; wait for the group
    clearTimeout(pending.timer);
    this.pending = undefined;
    this.stopping = undefined;
    pending.resolve(end);
  }
}

/** `$$`, `$PPID`, `$0`, `$-`, `$_`, braced or not: what differs between a subshell and a shell. */
const OWN_SHELL = /\$\{?(?:[$0_-]|PPID)/;

/**
 * Whether a command needs a /bin/sh of its own: it reads a parameter whose value in a subshell
 * of the slot's shell would not be that of a fresh `sh -c` (`$$` would be the slot's pid, the
 * same for every task the slot runs). Anything else runs in a subshell, with the same outcome.
 */
export function needsOwnShell(command: string): boolean {
  return OWN_SHELL.test(command);
}

/**
 * POSIX single quoting: exact for any string, newlines included. Written out rather than
 * taken from shell-quote because it runs several times per task and shell-quote's regexes
 * showed up in profiles.
 */
function quoted(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: nothing left in the group
  }
}

/**
 * Whether any process of the group is still running. Zombies do not count: a task's orphans
 * are re-parented to PID 1, and a PID 1 that does not reap (a container without an init)
 * leaves them in the group as zombies for good.
 */
function groupAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true; // no /proc (macOS): trust kill(2)
  }
  for (const entry of entries) {
    if (entry.charCodeAt(0) > 57) continue; // not a pid
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      // pid (comm) state ppid pgrp ...: comm may hold spaces, so parse after its last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') return true;
    } catch {
      // exited while we looked
    }
  }
  return false;
}

async function groupGone(pgid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (groupAlive(pgid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return true;
}
