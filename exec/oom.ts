import { readFileSync } from 'node:fs';

/**
 * The kernel's count of OOM kills in this process's memory cgroup: `oom_kill` in cgroup v2's
 * `memory.events`, or in cgroup v1's `memory.oom_control`. A task that died of SIGKILL while
 * the count went up was killed by the OOM killer (exit 137 alone proves nothing: timeouts and
 * people send SIGKILL too).
 *
 * Read when a task fails, not around every task: a task compares the count after its failure
 * with the count as last read (at the worker's start, or after an earlier failure), which
 * saves two file reads per task. An OOM kill is never missed; what could be misread is a
 * `kill -9` from a person after an OOM kill that failed no task (it hit a grandchild of a
 * task that then succeeded, say).
 */
export class OomCounter {
  /** The count when last read. */
  private last: number | undefined;

  private constructor(readonly file: string) {}

  /** The counter of this process's cgroup, or undefined where there is none to read. */
  static locate(
    procSelfCgroup = '/proc/self/cgroup',
    root = '/sys/fs/cgroup',
  ): OomCounter | undefined {
    let lines: string[];
    try {
      lines = readFileSync(procSelfCgroup, 'utf8').trim().split('\n');
    } catch {
      return undefined;
    }
    const candidates: string[] = [];
    for (const line of lines) {
      const [, controllers, path] = line.split(':', 3) as [string, string, string];
      if (path === undefined) continue;
      if (controllers === '') {
        // cgroup v2: the unified hierarchy, mounted at the root or (hybrid hosts) under unified/
        candidates.push(
          `${root}${path === '/' ? '' : path}/memory.events`,
          `${root}/unified${path === '/' ? '' : path}/memory.events`,
        );
      } else if (controllers.split(',').includes('memory')) {
        candidates.push(`${root}/memory${path === '/' ? '' : path}/memory.oom_control`);
      }
    }
    // In a container with a cgroup namespace the paths above are `/`: the files are at the top.
    candidates.push(`${root}/memory.events`, `${root}/memory/memory.oom_control`);
    for (const file of candidates) {
      const counter = new OomCounter(file);
      if (counter.read() !== undefined) return counter;
    }
    return undefined;
  }

  /** The count as last read: what a task starting now compares with. */
  get lastRead(): number | undefined {
    return this.last;
  }

  /** The number of OOM kills so far, or undefined when the file cannot be read. */
  read(): number | undefined {
    try {
      const match = /^oom_kill (\d+)$/m.exec(readFileSync(this.file, 'utf8'));
      this.last = match ? Number(match[1]) : undefined;
    } catch {
      this.last = undefined;
    }
    return this.last;
  }
}
