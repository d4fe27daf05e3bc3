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
import { startTestBroker, type TestBroker } from './rabbitmqNode.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const TASKER = join(ROOT, 'dist', 'tasker', 'cli.js');
const WORKER = join(ROOT, 'dist', 'worker', 'cli.js');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const QUIET = { WARREN_LOG_LEVEL: 'warn', WARREN_LOG_FORMAT: 'json' };

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
  const elapsed = await seconds(() =>
    execa('node', ['--import', preload, TASKER, ...args], {
      cwd,
      env: { ...QUIET, ...env },
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

async function deleteQueue(url: string, queue: string): Promise<void> {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  await channel.deleteQueue(queue).catch(() => {});
  await connection.close();
}

/** 2,000 `true` through the broker to two worker processes, next to `xargs -P 2`. */
async function brokerVersusXargs(work: string, broker: TestBroker): Promise<Row> {
  const jobs = join(work, 'jobs.sh');
  writeFileSync(jobs, 'true\n'.repeat(2000));
  const queue = `warren.bench.${randomBytes(3).toString('hex')}`;
  const env = { ...QUIET, RABBITMQ_URL: broker.url, WARREN_QUEUE: queue };
  const warren: number[] = [];
  const baseline: number[] = [];
  // Declare the queue first, so the workers (a standing fleet) are ready before the clock runs.
  writeFileSync(join(work, 'one.sh'), 'true\n');
  const workers = [1, 2].map((i) =>
    execa('node', [WORKER, '--name', `bench${i}`, '--workdir', work], { env, reject: false }),
  );
  try {
    await execa('node', [TASKER, 'send', join(work, 'one.sh'), '--workdir', work], { env });
    for (let round = 0; round < ROUNDS; round++) {
      const args = ['run', jobs, '--workdir', work, '--run-id', `bench-${process.pid}-${round}`];
      warren.push(await seconds(() => execa('node', [TASKER, ...args], { env })));
      baseline.push(await xargs(jobs, work));
    }
  } finally {
    for (const worker of workers) worker.kill('SIGTERM');
    await Promise.all(workers);
    await deleteQueue(broker.url, queue);
  }
  const w = median(warren);
  const b = median(baseline);
  return {
    case: '2,000 x `true` through RabbitMQ, 2 workers',
    warren: w,
    baseline: b,
    unit: 's',
    target: '<= 1.5x xargs -P 2',
    ok: w / b <= 1.5,
  };
}

/** Publishing 100,000 tasks (`tasker send --no-wait`): rate, and the tasker's peak memory. */
async function publishing(work: string, broker: TestBroker): Promise<Row[]> {
  const count = 100_000;
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
        case: 'publishing 100,000 tasks with confirms (whole command)',
        warren: rate,
        baseline: null,
        unit: 'tasks/s',
        target: 'reported',
        ok: true,
      },
      {
        case: 'peak RSS of the tasker publishing them',
        warren: mb,
        baseline: null,
        unit: 'MB',
        target: '< 150 MB',
        ok: mb < 150,
      },
    ];
  } finally {
    await deleteQueue(broker.url, queue);
    await deleteQueue(broker.url, `warren.results.${run}`);
  }
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
  const fmt = (value: number, unit: string) => `${value.toFixed(unit === 's' ? 2 : 0)} ${unit}`;
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
  const rows = [
    await localVersusXargs(work, '2,000 x `true`, 2 slots, local mode', 'true', 1.3),
    // Quotes and a variable: this one needs a shell of its own, as every xargs line does.
    await localVersusXargs(
      work,
      '2,000 x `test -n "$HOME"` (needs /bin/sh), same',
      'test -n "$HOME"',
      1.3,
    ),
    await brokerVersusXargs(work, broker),
    ...(await publishing(work, broker)),
    ...(await millionLines(work)),
  ];
  print(rows);
  mkdirSync(join(ROOT, 'bench'), { recursive: true });
  writeFileSync(
    join(ROOT, 'bench', 'results.json'),
    `${JSON.stringify({ at: new Date().toISOString(), node: process.version, rounds: ROUNDS, broker: broker.source, rows }, null, 2)}\n`,
  );
} finally {
  await broker?.stop();
  rmSync(work, { recursive: true, force: true });
}
