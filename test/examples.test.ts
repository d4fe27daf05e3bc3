import { cpSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, tasker, worker } from './helpers/cli.js';
import {
  brokerUrl,
  declareTaskQueue,
  eachFleet,
  startWorkers,
  type WorkerProcess,
  waitForConsumers,
} from './helpers/fleet.js';
import { endsOf, ledgerOf } from './helpers/ledger.js';
import { objectsIn, s3Env, testBucket } from './helpers/s3.js';

let dir: string;
let queue: string;
let workers: WorkerProcess[];
eachFleet((fleet) => ({ dir, queue, workers } = fleet));

/** The example's folder copied to the test's directory, with workers there on the test queue. */
async function withWorkers(example: string, count: number, env: Record<string, string> = {}) {
  cpSync(join(ROOT, 'examples', example), dir, { recursive: true });
  await declareTaskQueue(queue);
  workers.push(...startWorkers(count, { cwd: dir, queue, env }));
  await waitForConsumers(queue, count);
  return { RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue, ...env };
}

describe('examples', () => {
  it('quickstart: the README first command runs three phases and writes a summary', async () => {
    cpSync(join(ROOT, 'examples', 'quickstart'), dir, { recursive: true });
    const result = await tasker(['run', join(dir, 'jobs.sh'), '--workdir', dir], { cwd: ROOT });
    expect(result.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'results', 'summary.txt'), 'utf8')).toMatch(
      /^8 runs, pi is about 3\.1\d+\n$/,
    );
    const status = await tasker(['status', '--workdir', dir], { cwd: ROOT });
    expect(status.stdout).toMatch(/phase2\s+parallel\s+8\s+8\s+0\s+0\s+0/);
  });

  it('makita: the basic template runs through the stand-in python with --rules makita', async () => {
    cpSync(join(ROOT, 'examples', 'makita'), dir, { recursive: true });
    const result = await tasker(['run', 'jobs.sh', '--rules', 'makita'], { cwd: dir });
    expect(result.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'output', 'tables', 'metrics_all.csv'), 'utf8')).toBe(
      'merged 2 datasets\n',
    );
  });

  it('sweep: one simulation per row of params.csv, on two workers', async () => {
    const env = await withWorkers('sweep', 2);
    const result = await tasker(
      [
        'send',
        '--params',
        'params.csv',
        'python3 sim.py {x_scale} {y_scale} {zoom}',
        '--run-id',
        'sweep-1',
      ],
      { cwd: dir, env },
    );
    expect(result.exitCode).toBe(0);
    expect(readdirSync(join(dir, 'out')).sort()).toEqual([
      'sim_0.5_1_near.csv',
      'sim_0.5_2_near.csv',
      'sim_1_1_near.csv',
      'sim_1_2_far.csv',
      'sim_2_1_far.csv',
      'sim_2_2_very far.csv',
    ]);
    const ends = endsOf(ledgerOf(join(dir, '.warren'), 'sweep-1'));
    expect(new Set(ends.map((end) => end.worker.replace(/-\d+$/, '')))).toEqual(
      new Set(['w1', 'w2']),
    );
  });

  it('explore: the grid is explored outward on two workers, each point once', async () => {
    const env = await withWorkers('explore', 2);
    const result = await tasker(['run', 'jobs.sh', '--run-id', 'explore-1'], { cwd: dir, env });
    expect(result.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'region.txt'), 'utf8')).toBe(
      readFileSync(join(ROOT, 'examples', 'explore', 'region.expected.txt'), 'utf8'),
    );
    const explored = endsOf(ledgerOf(join(dir, '.warren'), 'explore-1')).filter((end) =>
      end.command.startsWith('./explore.sh'),
    );
    expect(explored).toHaveLength(55);
    expect(new Set(explored.map((end) => end.command)).size).toBe(55);
  });

  it('drain: send --no-wait, workers that exit when idle, collect, status and fetch', async () => {
    const bucket = await testBucket();
    const s3 = s3Env(bucket, 'renders');
    cpSync(join(ROOT, 'examples', 'drain'), dir, { recursive: true });
    const env = { RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue, ...s3 };
    const sent = await tasker(
      [
        'send',
        '--seq',
        '20',
        './render.sh {index}',
        '--no-wait',
        '--upload',
        'frames/*.ppm',
        '--run-id',
        'drain-1',
      ],
      { cwd: dir, env },
    );
    expect(sent.exitCode).toBe(0);
    expect(JSON.parse((await tasker(['status', '--json'], { cwd: dir, env })).stdout).state).toBe(
      'waiting',
    );
    // Workers that exit 0 once the queue is empty and they are idle.
    const exits = await Promise.all(
      ['d1', 'd2'].map((name) =>
        worker(['--queue', queue, '--name', name, '--exit-when-idle', '2s'], { cwd: dir, env }),
      ),
    );
    expect(exits.map((exit) => exit.exitCode)).toEqual([0, 0]);
    const collected = await tasker(['collect', '--json'], { cwd: dir, env });
    expect(collected.exitCode).toBe(0);
    expect(JSON.parse(collected.stdout)).toEqual({
      run: 'drain-1',
      succeeded: 20,
      failed: 0,
      left: 0,
      exitCode: 0,
    });
    expect(collected.stderr).toMatch(
      /collected 20 result\(s\) of run drain-1 .*: 20 succeeded, 0 failed; 0 still out/,
    );
    const status = JSON.parse((await tasker(['status', '--json'], { cwd: dir, env })).stdout);
    expect(status.state).toBe('succeeded');
    expect(status.phases).toMatchObject([{ name: 'sweep', total: 20, succeeded: 20 }]);
    // Each task's start, end, upload time and output size are in the ledger.
    const ends = endsOf(ledgerOf(join(dir, '.warren'), 'drain-1'));
    for (const end of ends) {
      expect(end.uploaded?.length).toBeGreaterThanOrEqual(1);
      expect(end.uploadMs).toBeGreaterThanOrEqual(0);
      expect(Date.parse(end.finishedAt)).toBeGreaterThanOrEqual(Date.parse(end.startedAt));
    }
    expect((await objectsIn(bucket, 'renders/drain-1/frames/')).size).toBe(20);
    const fetched = await tasker(['fetch', 'results'], { cwd: dir, env });
    expect(fetched.stdout).toMatch(/: 20 files \(.*\), 0 already there$/);
    expect(readdirSync(join(dir, 'results', 'frames'))).toHaveLength(20);
    expect(await objectsIn(bucket, 'renders/drain-1/frames/1.ppm')).toEqual(
      new Map([['renders/drain-1/frames/1.ppm', 139]]),
    );
  });
});
