/**
 * `npm run bench`: Warren next to its baselines, on this machine, in one invocation. Prints a
 * table and writes bench/results.json. Figures are ratios against a baseline measured in the
 * same run, because the machines we run on are shared and noisy. The broker is RABBITMQ_URL,
 * else a private node this script starts (and stops).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import amqp from 'amqplib';
import { execa } from 'execa';
import { declareTopology } from '../shared/topology.js';
import { CpuMeter, cpuLine } from './cpu.js';
import { startTestBroker, type TestBroker } from './rabbitmqNode.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
/**
 * The Warren measured: this checkout's build, or another's (`BENCH_WARREN=<a checkout>` whose
 * `dist` is built), to set a build before a change beside the one after it with the same cases.
 */
const WARREN = resolve(process.env.BENCH_WARREN ?? ROOT);
const TASKER = join(WARREN, 'dist', 'tasker', 'cli.js');
const WORKER = join(WARREN, 'dist', 'worker', 'cli.js');
const FLOOR = join(ROOT, 'dist', 'scripts', 'brokerFloor.js');
const SEED = join(ROOT, 'dist', 'scripts', 'seedBaseline.js');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** The long case takes some 20 s a round: one round unless said otherwise. */
const LONG_ROUNDS = Number(process.env.BENCH_LONG_ROUNDS ?? 1);
const QUIET = { WARREN_LOG_LEVEL: 'warn', WARREN_LOG_FORMAT: 'json' };
/** With BENCH_CPU=1, what each process of a broker run costs in CPU (set once the broker is up). */
let meter: CpuMeter | undefined;

interface Row {
  readonly case: string;
  readonly warren: number;
  readonly baseline: number | null;
  readonly unit: string;
  readonly target: string;
  readonly ok: boolean;
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

/** A figure with its unit: a speed-up (unit `x`) as `1.52x`. */
function fmt(value: number, unit: string): string {
  if (unit === 'x') return `${value.toFixed(2)}x`;
  return `${value.toFixed(unit === 's' ? 2 : 0)} ${unit}`;
}

/** Each row as soon as it is measured (the table at the end repeats them all). */
function said(row: Row): Row {
  const ratio = row.baseline === null ? '' : ` (${(row.warren / row.baseline).toFixed(2)}x)`;
  const figure =
    row.unit === 'x' ? fmt(row.warren, row.unit) : `${row.warren.toFixed(2)} ${row.unit}`;
  console.log(`  ${row.ok ? 'ok    ' : 'MISSED'} ${row.case}: ${figure}${ratio}`);
  return row;
}

async function seconds(run: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** Runs the tasker with a preload that writes its own peak RSS (bytes) when it exits. */
async function peakRss(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<{ bytes: number; seconds: number }> {
  const report = join(cwd, 'rss.txt');
  const preload = join(cwd, 'rss-preload.mjs');
  writeFileSync(
    preload,
    `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(${JSON.stringify(report)}, String(process.resourceUsage().maxRSS * 1024)));\n`,
  );
  // The bin itself, as people run it (its shebang sets Node's flags).
  const elapsed = await seconds(() =>
    execa(TASKER, args, {
      cwd,
      env: { ...QUIET, ...env, NODE_OPTIONS: `--import=${preload}` },
      reject: false,
    }),
  );
  return { bytes: Number(readFileSync(report, 'utf8')), seconds: elapsed };
}

async function xargs(jobs: string, cwd: string): Promise<number> {
  return seconds(() =>
    execa('xargs', ['-P', '2', '-I{}', 'sh', '-c', '{}'], { inputFile: jobs, cwd }),
  );
}

/** 2,000 copies of `line` through a local run with 2 slots, next to `xargs -P 2` on the same file. */
async function localVersusXargs(
  work: string,
  name: string,
  line: string,
  target: number,
): Promise<Row> {
  const jobs = join(work, 'jobs.sh');
  writeFileSync(jobs, `${line}\n`.repeat(2000));
  const warren: number[] = [];
  const baseline: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const state = join(work, `state-${round}`);
    const args = ['run', jobs, '--local', '-j', '2', '--state-dir', state, '--workdir', work];
    warren.push(await seconds(() => execa('node', [TASKER, ...args], { env: QUIET })));
    baseline.push(await xargs(jobs, work));
    rmSync(state, { recursive: true, force: true });
  }
  const w = median(warren);
  const b = median(baseline);
  return {
    case: name,
    warren: w,
    baseline: b,
    unit: 's',
    target: `<= ${target}x xargs -P 2`,
    ok: w / b <= target,
  };
}

/** Declares a task queue as the tasker declares it (default delivery limit), so workers attach now. */
async function declareQueue(url: string, queue: string): Promise<void> {
  const connection = await amqp.connect(url);
  await declareTopology(await connection.createChannel(), queue, 4);
  await connection.close();
}

async function deleteQueue(url: string, queue: string): Promise<void> {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  await channel.deleteQueue(queue).catch(() => {});
  await connection.close();
}

/** Declares the seed's task queue as asreview-cloud's tasker did: classic, durable. */
async function declareSeedQueue(url: string, queue: string): Promise<void> {
  const connection = await amqp.connect(url);
  await (await connection.createChannel()).assertQueue(queue, { durable: true });
  await connection.close();
}

/** Standing baseline workers (the seed's or the floor's) on a declared `queue`, consuming. */
async function baselineFleet(
  url: string,
  queue: string,
  count: number,
  args: readonly string[],
  cwd: string,
): Promise<{ pids: number[]; stop: () => Promise<void> }> {
  const processes = Array.from({ length: count }, () =>
    execa('node', args, { cwd, reject: false }),
  );
  await consumers(url, queue, count);
  return {
    pids: processes.map((process) => process.pid ?? 0),
    stop: async () => {
      for (const process of processes) process.kill('SIGTERM');
      await Promise.all(processes);
      await deleteQueue(url, queue);
    },
  };
}

/** The seed's workers (seedBaseline.ts), `count` processes, on a classic queue of their own. */
async function seedFleet(
  work: string,
  broker: TestBroker,
  count: number,
): Promise<{
  queue: string;
  pids: number[];
  stop: () => Promise<void>;
  /** Runs the seed's tasker on `jobs` to its end, timed (and metered, with BENCH_CPU). */
  run: (label: string, jobs: string) => Promise<number>;
}> {
  const queue = `warren.bench.${randomBytes(3).toString('hex')}.seed`;
  await declareSeedQueue(broker.url, queue);
  const fleet = await baselineFleet(
    broker.url,
    queue,
    count,
    [SEED, 'worker', broker.url, queue],
    work,
  );
  const run = (label: string, jobs: string) =>
    timedTasker(`seed ${label}`, [SEED, 'tasker', broker.url, queue, jobs], {}, fleet.pids);
  return { queue, ...fleet, run };
}

/**
 * Runs a tasker (Warren's or a baseline's: `node <args>`) to its end and times it; with
 * BENCH_CPU, says what the run cost the tasker, the standing `workers` and the broker.
 */
async function timedTasker(
  who: string,
  args: readonly string[],
  env: Record<string, string>,
  workers: readonly number[],
): Promise<number> {
  if (!meter) return seconds(() => execa('node', args, { env }));
  const taskerEnv = { ...env, ...meter.env };
  let elapsed = Number.NaN;
  const usage = await meter.measure(workers, async () => {
    const tasker = execa('node', args, { env: taskerEnv });
    elapsed = await seconds(() => tasker);
    return tasker.pid ?? 0;
  });
  console.log(`  ${cpuLine(who, usage)}`);
  return elapsed;
}

/**
 * 2,000 `true` through the broker to two workers of one slot at default settings, next to
 * `xargs -P 2`, the seed (asreview-cloud's flow, seedBaseline.ts) and the floor (Warren's flow
 * in bare amqplib, brokerFloor.ts), each on two worker processes, in the same rounds.
 */
async function brokerVersusXargs(work: string, broker: TestBroker): Promise<Row[]> {
  const jobs = join(work, 'jobs.sh');
  writeFileSync(jobs, 'true\n'.repeat(2000));
  const one = join(work, 'one.sh');
  writeFileSync(one, 'true\n');
  // Standing fleets, consuming before the clock runs.
  const workers = await fleet(work, broker, 2, 1);
  const seed = await seedFleet(work, broker, 2);
  const floorQueue = `${workers.env.WARREN_QUEUE}.floor`;
  await declareQueue(broker.url, floorQueue);
  const floorWorkers = await baselineFleet(
    broker.url,
    floorQueue,
    2,
    [FLOOR, 'worker', broker.url, floorQueue, '1'],
    work,
  );
  const warren: number[] = [];
  const seeds: number[] = [];
  const floor: number[] = [];
  const baseline: number[] = [];
  try {
    // One task through each first: connections and queues warm, as a standing fleet's are.
    await execa('node', [TASKER, 'send', one, '--workdir', work], { env: workers.env });
    await execa('node', [SEED, 'tasker', broker.url, seed.queue, one]);
    await execa('node', [FLOOR, 'tasker', broker.url, floorQueue, one]);
    for (let round = 0; round < ROUNDS; round++) {
      const run = `bench-${process.pid}-${round}`;
      const args = [TASKER, 'run', jobs, '--workdir', work, '--run-id', run];
      const label = `[broker ${round + 1}/${ROUNDS}]`;
      warren.push(await timedTasker(`warren ${label}`, args, workers.env, workers.pids));
      seeds.push(await seed.run(label, jobs));
      floor.push(
        await seconds(() => execa('node', [FLOOR, 'tasker', broker.url, floorQueue, jobs])),
      );
      baseline.push(await xargs(jobs, work));
    }
  } finally {
    await workers.stop();
    await seed.stop();
    await floorWorkers.stop();
  }
  const w = median(warren);
  const s = median(seeds);
  const b = median(baseline);
  return [
    {
      case: '2,000 x `true` through RabbitMQ, 2 workers of 1 slot, default settings, whole run',
      warren: w,
      baseline: b,
      unit: 's',
      target: '<= 1.5x xargs -P 2',
      ok: w / b <= 1.5,
    },
    {
      case: "the seed: asreview-cloud's flow in bare amqplib (classic queue, no confirms, prefetch 1, a fresh sh per task), 2 workers",
      warren: s,
      baseline: b,
      unit: 's',
      target: 'reported',
      ok: true,
    },
    {
      case: "floor: Warren's flow in bare amqplib (quorum queues, confirms, ack after result; nothing else), 2 workers, prefetch 1",
      warren: median(floor),
      baseline: b,
      unit: 's',
      target: 'reported',
      ok: true,
    },
    {
      case: "Warren against the seed on the same 2,000 x `true`: speed-up (the seed's time / Warren's)",
      warren: s / w,
      baseline: null,
      unit: 'x',
      target: '>= 1.5x',
      ok: s / w >= 1.5,
    },
  ];
}

/**
 * What a tasker command costs before any task: `tasker send` of one `true` through the broker to
 * a standing worker, whole command (start-up, connect, publish, the result), next to `node -e 0`.
 */
async function startup(work: string, broker: TestBroker): Promise<Row> {
  writeFileSync(join(work, 'one.sh'), 'true\n');
  const workers = await fleet(work, broker, 1, 1);
  const warren: number[] = [];
  const node: number[] = [];
  try {
    for (let round = 0; round < ROUNDS * 3; round++) {
      const args = ['send', join(work, 'one.sh'), '--workdir', work];
      const run = `bench-one-${process.pid}-${round}`;
      warren.push(
        await seconds(() =>
          execa('node', [TASKER, ...args, '--run-id', run], { env: workers.env }),
        ),
      );
      node.push(await seconds(() => execa('node', ['-e', '0'])));
    }
  } finally {
    await workers.stop();
  }
  return {
    case: `\`tasker send\` of one \`true\` through RabbitMQ to a standing worker, whole command (baseline: \`node -e 0\`)`,
    warren: median(warren),
    baseline: median(node),
    unit: 's',
    target: 'reported',
    ok: true,
  };
}

/** Waits until `count` consumers are on `queue`. */
async function consumers(url: string, queue: string, count: number): Promise<void> {
  for (;;) {
    const connection = await amqp.connect(url);
    const channel = await connection.createChannel();
    const { consumerCount } = await channel.checkQueue(queue);
    await connection.close();
    if (consumerCount >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Publishing 1,000,000 tasks (`tasker send --no-wait`): rate, and the tasker's peak memory. */
async function publishing(work: string, broker: TestBroker): Promise<Row[]> {
  const count = Number(process.env.BENCH_PUBLISH ?? 1_000_000);
  const jobs = join(work, 'many.sh');
  writeFileSync(
    jobs,
    Array.from({ length: count }, (_, i) => `python sim.py --seed ${i}\n`).join(''),
  );
  const queue = `warren.bench.${randomBytes(3).toString('hex')}`;
  const run = `bench-publish-${process.pid}`;
  try {
    const { bytes, seconds: elapsed } = await peakRss(
      ['send', jobs, '--no-wait', '--run-id', run, '--workdir', work],
      work,
      {
        RABBITMQ_URL: broker.url,
        WARREN_QUEUE: queue,
      },
    );
    const rate = count / elapsed;
    const mb = bytes / 1024 / 1024;
    return [
      {
        case: `publishing ${count.toLocaleString('en')} tasks with confirms (whole command)`,
        warren: rate,
        baseline: null,
        unit: 'tasks/s',
        target: '>= 20,000/s',
        ok: rate >= 20_000,
      },
      {
        case: 'peak RSS of the tasker publishing them',
        warren: mb,
        baseline: null,
        unit: 'MB',
        target: '<= 150 MB',
        ok: mb <= 150,
      },
    ];
  } finally {
    await deleteQueue(broker.url, queue);
    await deleteQueue(broker.url, `warren.results.${run}`);
  }
}

/**
 * A standing fleet of worker processes on a fresh queue, ready before the clock runs, at default
 * settings: each worker gets its name, the workdir and its slots, nothing else.
 */
async function fleet(
  work: string,
  broker: TestBroker,
  workers: number,
  concurrency: number,
): Promise<{
  env: Record<string, string>;
  pids: number[];
  stop: () => Promise<void>;
  kill: (i: number) => void;
}> {
  const queue = `warren.bench.${randomBytes(3).toString('hex')}`;
  const env = { ...QUIET, RABBITMQ_URL: broker.url, WARREN_QUEUE: queue };
  await declareQueue(broker.url, queue);
  const processes = Array.from({ length: workers }, (_, i) =>
    execa(
      'node',
      [WORKER, '--name', `fleet${i + 1}`, '--workdir', work, '--concurrency', String(concurrency)],
      { env, reject: false },
    ),
  );
  await consumers(broker.url, queue, workers); // ready: every worker consumes
  return {
    env,
    pids: processes.map((process) => process.pid ?? 0),
    kill: (i) => processes[i]?.kill('SIGKILL'),
    stop: async () => {
      for (const process of processes) process.kill('SIGTERM');
      await Promise.all(processes);
      await deleteQueue(broker.url, queue);
    },
  };
}

interface LedgerLine {
  type: string;
  at: string;
  phase?: string;
  startedAt?: string;
  finishedAt?: string;
  state?: string;
  worker?: string;
}

function ledgerLines(work: string, run: string): LedgerLine[] {
  return readFileSync(join(work, '.warren', 'runs', run, 'ledger.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as LedgerLine);
}

/** A run's phase time from its ledger: from the first phase's start to the last phase's end. */
function phaseSeconds(work: string, run: string): number {
  const lines = ledgerLines(work, run);
  const start = Date.parse(lines.find((line) => line.type === 'phase')?.at ?? '');
  const end = Date.parse(lines.findLast((line) => line.type === 'phase-end')?.at ?? '');
  return (end - start) / 1000;
}

/**
 * 400 x `sleep 0.05` on 8 slots (2 workers x 4) through RabbitMQ at default settings: the phase
 * next to 2.5 s, next to the seed on 8 worker processes and to `xargs -P 8`, in the same rounds.
 */
async function sleepers(work: string, broker: TestBroker): Promise<Row[]> {
  const ideal = (400 * 0.05) / 8;
  const jobs = join(work, 'sleep.sh');
  writeFileSync(jobs, 'sleep 0.05\n'.repeat(400));
  const workers = await fleet(work, broker, 2, 4);
  const seed = await seedFleet(work, broker, 8);
  const phases: number[] = [];
  const seeds: number[] = [];
  // What starting 400 processes costs here anyway: the same file through `xargs -P 8`.
  const xargs8: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const run = `bench-sleep-${process.pid}-${round}`;
      const label = `[sleepers ${round + 1}/${ROUNDS}]`;
      await timedTasker(
        `warren ${label}`,
        [TASKER, 'run', jobs, '--workdir', work, '--run-id', run],
        workers.env,
        workers.pids,
      );
      phases.push(phaseSeconds(work, run));
      seeds.push(await seed.run(label, jobs));
      xargs8.push(
        await seconds(() =>
          execa('xargs', ['-P', '8', '-I{}', 'sh', '-c', '{}'], { inputFile: jobs, cwd: work }),
        ),
      );
    }
  } finally {
    await workers.stop();
    await seed.stop();
  }
  const w = median(phases);
  const s = median(seeds);
  return [
    {
      case: `400 x \`sleep 0.05\`, 8 slots (2 workers x 4) through RabbitMQ, default settings, phase time (xargs -P 8: ${median(xargs8).toFixed(2)} s)`,
      warren: w,
      baseline: ideal,
      unit: 's',
      target: '<= 1.10x ideal 2.5 s',
      ok: w / ideal <= 1.1,
    },
    {
      case: 'the seed: the same file on 8 seed worker processes, whole run',
      warren: s,
      baseline: ideal,
      unit: 's',
      target: 'reported',
      ok: true,
    },
    {
      case: "Warren's phase time against the seed's whole run (8 processes)",
      warren: w,
      baseline: s,
      unit: 's',
      target: 'not slower than the seed (<= 1.00x)',
      ok: w <= s,
    },
  ];
}

/**
 * 20,000 distinct `true` lines on 2 workers of 1 slot at default settings: tasks a second over
 * the whole tasker run, next to the seed on 2 worker processes, in the same rounds.
 */
async function rate(work: string, broker: TestBroker): Promise<Row> {
  const count = 20_000;
  const jobs = join(work, 'rate-true.sh');
  writeFileSync(jobs, Array.from({ length: count }, (_, i) => `true ${i}`).join('\n'));
  const workers = await fleet(work, broker, 2, 1);
  const seed = await seedFleet(work, broker, 2);
  const warren: number[] = [];
  const seeds: number[] = [];
  let recorded = count;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const run = `bench-rate-${process.pid}-${round}`;
      const label = `[rate ${round + 1}/${ROUNDS}]`;
      const elapsed = await timedTasker(
        `warren ${label}`,
        [TASKER, 'run', jobs, '--workdir', work, '--run-id', run],
        workers.env,
        workers.pids,
      );
      warren.push(count / elapsed);
      const ends = ledgerLines(work, run).filter(
        (line) => line.type === 'end' && line.state === 'succeeded',
      );
      recorded = Math.min(recorded, ends.length);
      seeds.push(count / (await seed.run(label, jobs)));
    }
  } finally {
    await workers.stop();
    await seed.stop();
  }
  const w = median(warren);
  return {
    case: `20,000 x \`true\` on 2 workers of 1 slot, default settings, whole run, next to the seed on 2 workers (fewest recorded: ${recorded} of ${count})`,
    warren: w,
    baseline: median(seeds),
    unit: 'tasks/s',
    target: ">= 1,746/s (3x the previous design's 582/s)",
    ok: w >= 1746 && recorded === count,
  };
}

/** 80 x `sleep 2` on 8 slots (2 workers x 4) at default settings: the phase next to 20 s. */
async function long(work: string, broker: TestBroker): Promise<Row> {
  const ideal = (80 * 2) / 8;
  const jobs = join(work, 'long-sleep.sh');
  writeFileSync(jobs, 'sleep 2\n'.repeat(80));
  const workers = await fleet(work, broker, 2, 4);
  const phases: number[] = [];
  try {
    for (let round = 0; round < LONG_ROUNDS; round++) {
      const run = `bench-long-${process.pid}-${round}`;
      await execa('node', [TASKER, 'run', jobs, '--workdir', work, '--run-id', run], {
        env: workers.env,
      });
      phases.push(phaseSeconds(work, run));
    }
  } finally {
    await workers.stop();
  }
  const w = median(phases);
  return {
    case: `80 x \`sleep 2\`, 8 slots (2 workers x 4) through RabbitMQ, default settings, phase time (${LONG_ROUNDS} round${LONG_ROUNDS === 1 ? '' : 's'}: BENCH_LONG_ROUNDS, default 1)`,
    warren: w,
    baseline: ideal,
    unit: 's',
    target: '<= 1.05x ideal 20 s',
    ok: w / ideal <= 1.05,
  };
}

/** Phase barrier: from the last result of a phase to the first start in the next. */
async function barrier(work: string, broker: TestBroker): Promise<Row> {
  const phases = 20;
  const lines: string[] = [];
  for (let p = 0; p < phases; p++) {
    if (p > 0) lines.push('wait');
    for (let i = 0; i < 4; i++) lines.push(`true # phase ${p} task ${i}`);
  }
  writeFileSync(join(work, 'barrier.sh'), `${lines.join('\n')}\n`);
  const workers = await fleet(work, broker, 2, 1);
  const gaps: number[] = [];
  try {
    const run = `bench-barrier-${process.pid}`;
    await execa(
      'node',
      [TASKER, 'run', join(work, 'barrier.sh'), '--workdir', work, '--run-id', run],
      {
        env: workers.env,
      },
    );
    const ends = ledgerLines(work, run).filter((line) => line.type === 'end');
    const byPhase = new Map<string, LedgerLine[]>();
    for (const end of ends)
      byPhase.set(end.phase ?? '', [...(byPhase.get(end.phase ?? '') ?? []), end]);
    const ordered = [...byPhase.values()];
    for (let p = 1; p < ordered.length; p++) {
      const last = Math.max(
        ...(ordered[p - 1] ?? []).map((end) => Date.parse(end.finishedAt ?? '')),
      );
      const first = Math.min(...(ordered[p] ?? []).map((end) => Date.parse(end.startedAt ?? '')));
      gaps.push(first - last);
    }
  } finally {
    await workers.stop();
  }
  const w = median(gaps);
  return {
    case: `phase barrier: last result to next phase's first start (median of ${gaps.length}, max ${Math.max(...gaps)} ms)`,
    warren: w,
    baseline: null,
    unit: 'ms',
    target: '<= 20 ms',
    ok: w <= 20,
  };
}

/** A worker SIGKILLed mid-task: how soon its task runs again on another worker. */
async function workerKilled(work: string, broker: TestBroker): Promise<Row> {
  const starts = join(work, 'starts.txt');
  rmSync(starts, { force: true });
  writeFileSync(
    join(work, 'long.sh'),
    `echo "$WARREN_WORKER $(date +%s%3N)" >> ${starts}; sleep 3\n`,
  );
  const workers = await fleet(work, broker, 2, 1);
  let delay = Number.NaN;
  try {
    const run = `bench-kill-${process.pid}`;
    const tasker = execa(
      'node',
      [TASKER, 'run', join(work, 'long.sh'), '--workdir', work, '--run-id', run],
      {
        env: workers.env,
        reject: false,
      },
    );
    const read = () => {
      try {
        return readFileSync(starts, 'utf8').split('\n').filter(Boolean);
      } catch {
        return [];
      }
    };
    while (read().length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    // Which worker runs it: its slot log names it; kill the process whose name starts the line.
    const first = read()[0] ?? '';
    const killedAt = Date.now();
    workers.kill(first.startsWith('fleet2') ? 1 : 0);
    while (read().length < 2) await new Promise((resolve) => setTimeout(resolve, 20));
    delay = Number(read()[1]?.split(' ')[1]) - killedAt;
    await tasker;
  } finally {
    await workers.stop();
  }
  return {
    case: 'a worker SIGKILLed: its task running again elsewhere',
    warren: delay / 1000,
    baseline: null,
    unit: 's',
    target: '<= 2 s',
    ok: delay <= 2000,
  };
}

/** 20,000 `true` on 200 slots (2 workers x 100) next to 2 slots: nothing lost, no slower. */
async function manySlots(work: string, broker: TestBroker): Promise<Row> {
  const count = 20_000;
  writeFileSync(
    join(work, 'many-true.sh'),
    Array.from({ length: count }, (_, i) => `true ${i}`).join('\n'),
  );
  const rate = async (concurrency: number) => {
    const workers = await fleet(work, broker, 2, concurrency);
    try {
      const run = `bench-slots-${concurrency}-${process.pid}`;
      const elapsed = await seconds(() =>
        execa(
          'node',
          [TASKER, 'run', join(work, 'many-true.sh'), '--workdir', work, '--run-id', run],
          {
            env: workers.env,
          },
        ),
      );
      const ends = ledgerLines(work, run).filter(
        (line) => line.type === 'end' && line.state === 'succeeded',
      );
      return { rate: count / elapsed, done: ends.length };
    } finally {
      await workers.stop();
    }
  };
  const two = await rate(1);
  const many = await rate(100);
  return {
    case: `20,000 x \`true\` on 200 slots (2 workers x 100), next to 2 slots (${many.done} of ${count} recorded)`,
    warren: many.rate,
    baseline: two.rate,
    unit: 'tasks/s',
    target: 'no task lost, rate >= 2 slots',
    ok: many.done === count && two.done === count && many.rate >= two.rate,
  };
}

/**
 * Longest first, from history: 20 x `sleep 0.2` then 3 x `sleep 2` (10 s of work) on 2 workers of
 * 1 slot. A first run records the durations; then, in the same rounds, the phase published
 * longest first (the default) and in file order (`--order file`), next to the lower bound
 * max(longest task, work / slots) = 5 s. In a workdir of its own, so its history is only this.
 */
async function longestFirst(work: string, broker: TestBroker): Promise<Row[]> {
  const dir = join(work, 'order');
  mkdirSync(dir, { recursive: true });
  const durations = [
    ...Array.from({ length: 20 }, () => 0.2),
    ...Array.from({ length: 3 }, () => 2),
  ];
  const slots = 2;
  const ideal = Math.max(...durations, durations.reduce((a, b) => a + b, 0) / slots);
  const jobs = join(dir, 'mixed.sh');
  writeFileSync(jobs, durations.map((d, i) => `sleep ${d} # task ${i}\n`).join(''));
  const workers = await fleet(dir, broker, slots, 1);
  const run = async (id: string, order: string) => {
    await execa('node', [TASKER, 'run', jobs, '--workdir', dir, '--run-id', id, '--order', order], {
      env: workers.env,
    });
    return phaseSeconds(dir, id);
  };
  const longest: number[] = [];
  const file: number[] = [];
  try {
    await run(`bench-order-history-${process.pid}`, 'file');
    for (let round = 0; round < ROUNDS; round++) {
      longest.push(await run(`bench-order-longest-${process.pid}-${round}`, 'longest'));
      file.push(await run(`bench-order-file-${process.pid}-${round}`, 'file'));
    }
  } finally {
    await workers.stop();
  }
  const l = median(longest);
  const f = median(file);
  return [
    {
      case: `23 tasks (20 x \`sleep 0.2\`, then 3 x \`sleep 2\`) on 2 workers of 1 slot, durations from a prior run, published longest first: phase time next to the lower bound max(longest, work / slots) = ${ideal} s`,
      warren: l,
      baseline: ideal,
      unit: 's',
      target: '<= 4/3 of the lower bound (LPT)',
      ok: l / ideal <= 4 / 3,
    },
    {
      case: 'the same tasks in file order (`--order file`), next to the same bound',
      warren: f,
      baseline: ideal,
      unit: 's',
      target: 'reported',
      ok: true,
    },
    {
      case: 'longest first next to file order, same tasks, same rounds',
      warren: l,
      baseline: f,
      unit: 's',
      target: 'faster (< 1.00x)',
      ok: l < f,
    },
  ];
}

/**
 * What the duration history costs: a state dir holding one ledger of 200,000 succeeded attempts
 * (10 runs of a 20,000-task phase), indexed from nothing, then loaded again with nothing new, and
 * a 20,000-task phase ordered by it.
 */
async function historyCost(work: string): Promise<Row[]> {
  const { DurationHistory } = await import('../tasker/history/index.js');
  const { orderPhase } = await import('../tasker/dispatch/publishOrder.js');
  const state = join(work, 'history-state');
  const runs = 10;
  const tasks = 20_000;
  const command = (i: number) =>
    `python -m asreview simulate data/d${i % 50}.csv -o output/simulation/d${i % 50}/state_files/sim_${i}.asreview --seed ${i}`;
  let bytes = 0;
  for (let r = 0; r < runs; r++) {
    const dir = join(state, 'runs', `bench-history-${r}`);
    mkdirSync(dir, { recursive: true });
    const at = Date.parse('2026-12-01T00:00:00Z') + r * 3_600_000;
    const lines: string[] = [];
    for (let i = 0; i < tasks; i++) {
      lines.push(
        `${JSON.stringify({ type: 'start', at: new Date(at).toISOString(), task: i.toString(16).padStart(16, '0'), phase: 'simulate', attempt: 1, worker: 'w1-1' })}\n`,
        `${JSON.stringify({ type: 'end', at: new Date(at).toISOString(), task: i.toString(16).padStart(16, '0'), phase: 'simulate', command: command(i), attempt: 1, state: 'succeeded', final: true, failure: null, reason: null, worker: 'w1-1', host: 'node-1', startedAt: new Date(at - 1000 - (i % 977)).toISOString(), finishedAt: new Date(at).toISOString(), exitCode: 0, signal: null, errorTail: '', logs: { stdout: { file: 'runs/x/logs/w1-1.out', start: i * 100, end: i * 100 + 100 }, stderr: { file: 'runs/x/logs/w1-1.err', start: 0, end: 0 } } })}\n`,
      );
    }
    const text = lines.join('');
    bytes += Buffer.byteLength(text);
    writeFileSync(join(dir, 'ledger.jsonl'), text);
  }
  const cold = await seconds(() => DurationHistory.load(state));
  const warm = await seconds(() => DurationHistory.load(state));
  const { history } = await DurationHistory.load(state);
  const spool = join(work, 'history-phase.jsonl');
  writeFileSync(
    spool,
    Array.from(
      { length: tasks },
      (_, i) => `${JSON.stringify([i.toString(16).padStart(16, '0'), command(i)])}\n`,
    ).join(''),
  );
  const ordered = await seconds(async () => {
    const order = await orderPhase(
      { name: 'simulate', kind: 'parallel', total: tasks, spool },
      'longest',
      (text) => history.expectedMs(text),
    );
    for await (const _ of order.tasks());
  });
  const mb = (bytes / 1024 / 1024).toFixed(0);
  return [
    {
      case: `duration history: indexing ${(runs * tasks).toLocaleString('en')} succeeded attempts from nothing (${runs} ledgers, ${mb} MB; once per state dir)`,
      warren: cold,
      baseline: null,
      unit: 's',
      target: 'reported',
      ok: true,
    },
    {
      case: 'duration history: loading it again, nothing new in the ledgers (every run start)',
      warren: warm * 1000,
      baseline: null,
      unit: 'ms',
      target: '<= 100 ms',
      ok: warm <= 0.1,
    },
    {
      case: `ordering a ${tasks.toLocaleString('en')}-task phase longest first by it (read, look up, sort, read back)`,
      warren: ordered * 1000,
      baseline: null,
      unit: 'ms',
      target: '<= 500 ms',
      ok: ordered <= 0.5,
    },
  ];
}

async function millionLines(work: string): Promise<Row[]> {
  const jobs = join(work, 'million.sh');
  const line = (i: number) =>
    `python -m asreview simulate data/d${i % 50}.csv -o output/simulation/d${i % 50}/state_files/sim_${i}.asreview --seed ${i}\n`;
  const chunks: string[] = [];
  for (let i = 0; i < 1_000_000; i++) chunks.push(line(i));
  writeFileSync(jobs, chunks.join(''));
  mkdirSync(join(work, 'parts'));
  const split = await peakRss(
    ['split', jobs, '--rules', 'makita', '--out-dir', join(work, 'parts')],
    work,
  );
  // A run reads the same file into phase files with a task id per line; a first serial step
  // that fails stops it right after, so this measures reading and planning, not running.
  writeFileSync(join(work, 'run.sh'), `false\n${chunks.join('')}`);
  const run = await peakRss(
    [
      'run',
      'run.sh',
      '--phase',
      'first=^false',
      '--phase',
      'rest=.',
      '--serial',
      'first',
      '--retries',
      '0',
      '--local',
    ],
    work,
  );
  const row = (name: string, bytes: number): Row => {
    const mb = bytes / 1024 / 1024;
    return { case: name, warren: mb, baseline: null, unit: 'MB', target: '< 150 MB', ok: mb < 150 };
  };
  return [
    row('peak RSS, `tasker split` of 1,000,000 lines', split.bytes),
    row('peak RSS, `tasker run` reading 1,000,000 lines', run.bytes),
  ];
}

function print(rows: readonly Row[]): void {
  const table = [
    ['case', 'warren', 'baseline', 'ratio', 'target', ''],
    ...rows.map((row) => [
      row.case,
      fmt(row.warren, row.unit),
      row.baseline === null ? '-' : fmt(row.baseline, row.unit),
      row.baseline === null ? '-' : `${(row.warren / row.baseline).toFixed(2)}x`,
      row.target,
      row.ok ? 'ok' : 'MISSED',
    ]),
  ];
  const widths =
    table[0]?.map((_, column) => Math.max(...table.map((row) => row[column]?.length ?? 0))) ?? [];
  for (const row of table)
    console.log(
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    );
}

const work = join(tmpdir(), `warren-bench-${process.pid}`);
mkdirSync(work, { recursive: true });
let broker: TestBroker | undefined;
try {
  console.log(
    `warren bench: ${ROUNDS} rounds each, median wall time; baselines run in the same invocation`,
  );
  broker = await startTestBroker();
  console.log(`broker: ${broker.source}\n`);
  if (process.env.BENCH_CPU === '1') {
    meter = CpuMeter.start(work, broker.url);
    console.log(
      `cpu: per run of the broker cases; broker = ${meter.broker.length} beam.smp process${meter.broker.length === 1 ? '' : 'es'} (${meter.broker.join(', ')})\n`,
    );
  }
  // BENCH_ONLY=<regex> runs the cases whose key matches (keys: local, shell, broker, sleepers,
  // rate, long, barrier, kill, slots, publish, lines, startup, order, history).
  const only = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY) : undefined;
  const cases: [string, () => Promise<Row | Row[]>][] = [
    ['local', () => localVersusXargs(work, '2,000 x `true`, 2 slots, local mode', 'true', 1.2)],
    // Quotes and a variable: shell syntax, which every xargs line gives a shell of its own.
    [
      'shell',
      () =>
        localVersusXargs(
          work,
          '2,000 x `test -n "$HOME"` (shell syntax), same',
          'test -n "$HOME"',
          1.3,
        ),
    ],
    ['broker', () => brokerVersusXargs(work, broker as TestBroker)],
    ['sleepers', () => sleepers(work, broker as TestBroker)],
    ['rate', () => rate(work, broker as TestBroker)],
    ['long', () => long(work, broker as TestBroker)],
    ['barrier', () => barrier(work, broker as TestBroker)],
    ['kill', () => workerKilled(work, broker as TestBroker)],
    ['slots', () => manySlots(work, broker as TestBroker)],
    ['publish', () => publishing(work, broker as TestBroker)],
    ['lines', () => millionLines(work)],
    ['startup', () => startup(work, broker as TestBroker)],
    ['order', () => longestFirst(work, broker as TestBroker)],
    ['history', () => historyCost(work)],
  ];
  const rows: Row[] = [];
  for (const [key, measure] of cases) {
    if (only && !only.test(key)) continue;
    rows.push(...[await measure()].flat().map(said));
  }
  print(rows);
  // Only a full run replaces the committed figures.
  if (!only && WARREN === ROOT) {
    mkdirSync(join(ROOT, 'bench'), { recursive: true });
    writeFileSync(
      join(ROOT, 'bench', 'results.json'),
      `${JSON.stringify({ at: new Date().toISOString(), node: process.version, rounds: ROUNDS, broker: broker.source, rows }, null, 2)}\n`,
    );
  }
} finally {
  await broker?.stop();
  rmSync(work, { recursive: true, force: true });
}
