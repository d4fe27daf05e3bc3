/**
 * CPU seconds (user + system) each process of a broker run used, for `BENCH_CPU=1`: the tasker
 * from a preload that writes `process.resourceUsage()` when it exits, the standing workers and
 * the broker from `/proc/<pid>/stat` before and after (a process's own time, not its children's).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What one run cost each process, in CPU seconds. */
export interface CpuUsage {
  readonly tasker: number;
  readonly workers: readonly number[];
  readonly broker: number;
}

/** utime + stime of a process, in clock ticks; NaN once it is gone. */
function ticks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from its last `)`.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return Number.NaN;
  }
}

/** Every `beam.smp` on this machine: the broker's Erlang VMs, when it runs here. */
function beams(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue; // gone since the listing
    }
    if (cmdline.includes('beam.smp')) pids.push(Number(entry));
  }
  return pids;
}

/** Measures runs; one per broker (its VMs are found once). */
export class CpuMeter {
  private constructor(
    private readonly hz: number,
    /** The broker's VMs; with several (and no node name to tell them apart), their sum. */
    readonly broker: readonly number[],
    private readonly dir: string,
  ) {}

  /**
   * Takes the broker's VM (`broker`, when known, as a private node's pid file says) or every
   * `beam.smp` here, and writes the tasker's preload into `dir`.
   */
  static start(dir: string, broker?: number): CpuMeter {
    const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    writeFileSync(
      join(dir, 'cpu-preload.mjs'),
      `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => { const u = process.resourceUsage(); writeFileSync(${JSON.stringify(dir)} + '/cpu-' + process.pid + '.txt', String((u.userCPUTime + u.systemCPUTime) / 1e6)); });\n`,
    );
    return new CpuMeter(hz, broker ? [broker] : beams(), dir);
  }

  /** The environment a tasker runs with so that it reports its CPU time. */
  get env(): Record<string, string> {
    return { NODE_OPTIONS: `--import=${join(this.dir, 'cpu-preload.mjs')}` };
  }

  /**
   * Runs `run` (which starts the tasker with `env` and returns its pid once it is done) and says
   * what it cost the tasker, the `workers` and the broker.
   */
  async measure(workers: readonly number[], run: () => Promise<number>): Promise<CpuUsage> {
    const sum = (pids: readonly number[]) => pids.reduce((total, pid) => total + ticks(pid), 0);
    const before = workers.map(ticks);
    const brokerBefore = sum(this.broker);
    const tasker = await run();
    const brokerAfter = sum(this.broker);
    let taskerSeconds = Number.NaN;
    try {
      taskerSeconds = Number(readFileSync(join(this.dir, `cpu-${tasker}.txt`), 'utf8'));
    } catch {
      // it wrote nothing (killed): NaN says so
    }
    return {
      tasker: taskerSeconds,
      workers: workers.map((pid, i) => (ticks(pid) - (before[i] ?? Number.NaN)) / this.hz),
      broker: (brokerAfter - brokerBefore) / this.hz,
    };
  }
}

/** `cpu warren: tasker 0.61 s, workers 0.40 + 0.38 s, broker 0.90 s` */
export function cpuLine(who: string, usage: CpuUsage): string {
  const s = (value: number) => value.toFixed(2);
  return `cpu ${who}: tasker ${s(usage.tasker)} s, workers ${usage.workers.map(s).join(' + ')} s, broker ${s(usage.broker)} s`;
}
