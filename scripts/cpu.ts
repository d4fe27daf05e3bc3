/**
 * CPU seconds (user + system) each process of a broker run used, for `BENCH_CPU=1`: the tasker
 * from a preload that writes `process.resourceUsage()` when it exits, the standing workers and
 * the broker from `/proc/<pid>/stat` before and after (a process's own time, not its children's).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
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

/** Every `beam.smp` on this machine. */
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

/** The inodes of the sockets listening on TCP `port` here (IPv4 or IPv6). */
function listening(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue; // no IPv6
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1]?.split(':')[1];
      // State 0A is LISTEN; field 9 is the socket's inode.
      if (local && Number.parseInt(local, 16) === port && fields[3] === '0A' && fields[9])
        inodes.add(fields[9]);
    }
  }
  return inodes;
}

/**
 * The broker's VMs: the `beam.smp` that listens on `port`, when one here does (other nodes, such
 * as tests' private ones, may run beside it); else every `beam.smp`, summed.
 */
function brokerVms(port: number): number[] {
  const all = beams();
  const sockets = listening(port);
  // A descriptor closed since the listing, or a process gone or not ours to read: not it.
  const descriptors = (pid: number) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).map((fd) => `/proc/${pid}/fd/${fd}`);
    } catch {
      return [];
    }
  };
  const socket = (fd: string) => {
    try {
      return /^socket:\[(\d+)\]$/.exec(readlinkSync(fd))?.[1] ?? '';
    } catch {
      return '';
    }
  };
  const owner = all.find((pid) => descriptors(pid).some((fd) => sockets.has(socket(fd))));
  return owner ? [owner] : all;
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
   * Finds the VM of the broker at `url` (the `beam.smp` listening on its port) and writes the
   * tasker's preload into `dir`.
   */
  static start(dir: string, url: string): CpuMeter {
    const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    writeFileSync(
      join(dir, 'cpu-preload.mjs'),
      `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => { const u = process.resourceUsage(); writeFileSync(${JSON.stringify(dir)} + '/cpu-' + process.pid + '.txt', String((u.userCPUTime + u.systemCPUTime) / 1e6)); });\n`,
    );
    return new CpuMeter(hz, brokerVms(Number(new URL(url).port) || 5672), dir);
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
