import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { worker } from '../helpers/cli.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';

/** Lines of a file in `dir`, or none when it does not exist yet. */
export function linesOf(dir: string, name: string): string[] {
  const path = join(dir, name);
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
}

function children(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // gone
    }
  }
  return found;
}

/**
 * SIGKILLs a process and everything below it, as a lost node or an evicted pod does to a
 * worker and the tasks it runs.
 */
export function killTree(pid: number): void {
  const all: number[] = [];
  const walk = (p: number) => {
    all.push(p);
    for (const child of children(p)) walk(child);
  };
  walk(pid);
  for (const p of all) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * A worker kept alive the way Kubernetes keeps a Deployment's pod: started again whenever it
 * exits, until stopped. `restarts` counts the deaths.
 */
export class Supervised {
  restarts = 0;
  current: ReturnType<typeof worker>;
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(private readonly start: () => ReturnType<typeof worker>) {
    this.current = start();
    this.done = this.watch();
  }

  private async watch(): Promise<void> {
    for (;;) {
      await this.current;
      if (this.stopped) return;
      this.restarts++;
      this.current = this.start();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current.kill('SIGTERM');
    await this.done;
  }
}

/**
 * What a run's ledger says went wrong: tasks without a succeeded attempt, and tasks with more
 * than one final outcome (or more than one success).
 */
export function ledgerFaults(
  stateDir: string,
  run: string,
  tasks: readonly string[],
): { lost: string[]; twice: string[] } {
  const ends = endsOf(ledgerOf(stateDir, run));
  const lost = tasks.filter(
    (task) => !ends.some((end) => end.task === task && end.state === 'succeeded'),
  );
  const twice = tasks.filter(
    (task) =>
      ends.filter((end) => end.task === task && end.final).length > 1 ||
      ends.filter((end) => end.task === task && end.state === 'succeeded').length > 1,
  );
  return { lost, twice };
}

/** The task ids of a run, in the order of its phase files. */
export function taskIds(stateDir: string, run: string): string[] {
  const dir = join(stateDir, 'runs', run, 'phases');
  return readdirSync(dir)
    .filter((name) => name.endsWith('.jsonl'))
    .flatMap((name) =>
      readFileSync(join(dir, name), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => (JSON.parse(line) as [string, string])[0]),
    );
}
