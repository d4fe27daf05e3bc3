import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateNode } from '../helpers/broker.js';
import { processesIn, tasker, tempDir, waitFor, worker } from '../helpers/cli.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';
import { count } from './figures.js';
import { ledgerFaults, linesOf, taskIds } from './support.js';

let node: PrivateNode;
let dir: string;
let cleanup: () => void;

beforeAll(async () => {
  node = await PrivateNode.start();
  ({ dir, cleanup } = tempDir());
});

afterAll(async () => {
  await node?.stop();
  cleanup?.();
});

describe('faults: the broker', () => {
  it('restarted mid-phase: tasker and workers reconnect, nothing is lost, nothing recorded twice', async () => {
    const lines = Array.from({ length: 30 }, (_, i) => `sleep 0.2; echo ${i} >> done.txt`);
    writeFileSync(join(dir, 'jobs.sh'), `${lines.join('\n')}\nwait\necho after >> done.txt\n`);
    const env = { RABBITMQ_URL: node.url };
    const workers = [1, 2].map((i) => worker(['--name', `w${i}`], { cwd: dir, env }));
    const run = tasker(['run', 'jobs.sh', '--run-id', 'restart-1'], { cwd: dir, env });
    await waitFor(() => linesOf(dir, 'done.txt').length >= 6, 60_000, 'six tasks done');
    await node.halt();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await node.boot();
    const result = await run;
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toMatch(/lost the broker at 127\.0\.0\.1/);
    expect(result.stderr).toMatch(/reconnected to the broker/);
    const tasks = taskIds(join(dir, '.warren'), 'restart-1');
    const { lost, twice } = ledgerFaults(join(dir, '.warren'), 'restart-1', tasks);
    expect(lost).toEqual([]);
    expect(twice).toEqual([]);
    // Every task's work is there (some may have run twice: at-least-once, recorded once).
    const done = new Set(linesOf(dir, 'done.txt'));
    for (let i = 0; i < 30; i++) expect(done.has(String(i)), `task ${i}`).toBe(true);
    expect(done.has('after')).toBe(true);
    for (const process of workers) process.kill('SIGTERM');
    const exits = await Promise.all(workers);
    expect(exits.map((exit) => exit.exitCode)).toEqual([0, 0]);
    expect(processesIn(dir)).toEqual([]);
    count({
      tasksRun: linesOf(dir, 'done.txt').length,
      brokerRestarts: 1,
      tasksLost: lost.length,
      recordedTwice: twice.length,
    });
  });

  it('a task running across a reconnect is not reported lost by its own worker', async () => {
    // The task waits for `go`, so it is still running when the worker reconnects.
    writeFileSync(
      join(dir, 'long.sh'),
      'while [ ! -e go ]; do sleep 0.1; done; echo long >> long.txt\n',
    );
    const env = { RABBITMQ_URL: node.url };
    const inflight = join(dir, 'inflight');
    const one = worker(['--name', 'w3', '--inflight-dir', inflight], { cwd: dir, env });
    const run = tasker(['run', 'long.sh', '--run-id', 'restart-2'], { cwd: dir, env });
    await waitFor(
      () => existsSync(inflight) && readdirSync(inflight).length === 1,
      30_000,
      'the task to start',
    );
    await node.halt();
    await node.boot();
    // The worker consumes again only after it has looked for leftover markers.
    await waitFor(
      () => consumers(node.url, 'warren.tasks').then((n) => n >= 1),
      60_000,
      'the worker to consume again',
    );
    writeFileSync(join(dir, 'go'), '');
    const result = await run;
    one.kill('SIGTERM');
    const { stderr } = await one;
    expect(result.exitCode).toBe(0);
    expect(stderr).not.toMatch(/reporting it lost/);
    expect(endsOf(ledgerOf(join(dir, '.warren'), 'restart-2'))).toMatchObject([
      { state: 'succeeded', final: true, worker: 'w3-1' },
    ]);
    expect(readdirSync(inflight)).toEqual([]);
    count({ brokerRestarts: 1, tasksRun: 1 });
  });
  it('an interrupted tasker stops at once while the broker is down; the run resumes later', async () => {
    writeFileSync(join(dir, 'two.sh'), 'touch prep.started; sleep 2\necho x >> x.txt\n');
    const env = { RABBITMQ_URL: node.url };
    const args = ['--phase', 'prep=^touch', '--phase', 'work=^echo', '--serial', 'prep'];
    const run = tasker(['run', 'two.sh', '--run-id', 'down-1', ...args], { cwd: dir, env });
    await waitFor(() => existsSync(join(dir, 'prep.started')), 10_000, 'the serial step');
    await node.halt();
    // The serial step ends; the tasker now waits for the broker to publish phase `work`.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const asked = Date.now();
    run.kill('SIGTERM');
    const result = await run;
    expect(result.exitCode).toBe(130);
    expect(Date.now() - asked).toBeLessThan(20_000);
    expect(result.stderr).toMatch(/run down-1 interrupted; resume it with --run-id down-1/);
    await node.boot();
    const one = worker(['--name', 'w4'], { cwd: dir, env });
    const resumed = await tasker(['run', 'two.sh', '--run-id', 'down-1', ...args], {
      cwd: dir,
      env,
    });
    one.kill('SIGTERM');
    await one;
    expect(resumed.exitCode).toBe(0);
    expect(linesOf(dir, 'x.txt')).toEqual(['x']);
    count({ brokerRestarts: 1, tasksRun: 2 });
  });

  it('a worker that gives up on the broker exits 3, even with a result it cannot publish', async () => {
    writeFileSync(join(dir, 'late.sh'), 'touch late.started; sleep 2; echo late >> late.txt\n');
    const env = { RABBITMQ_URL: node.url, WARREN_RECONNECT_TIMEOUT: '3s' };
    const one = worker(['--name', 'w5'], { cwd: dir, env });
    const run = tasker(['run', 'late.sh', '--run-id', 'down-2'], { cwd: dir, env });
    await waitFor(() => existsSync(join(dir, 'late.started')), 20_000, 'the task');
    await node.halt();
    const [left, gone] = await Promise.all([one, run]);
    await node.boot();
    expect(left.exitCode).toBe(3);
    expect(left.stderr).toMatch(/could not publish the result of task \w+: the broker is gone/);
    expect(gone.exitCode).toBe(3);
    expect(linesOf(dir, 'late.txt')).toEqual(['late']);
    expect(processesIn(dir)).toEqual([]);
    count({ brokerRestarts: 1, tasksRun: 1 });
  });
});

/** Consumers on a queue, or 0 while it cannot be checked. */
async function consumers(url: string, queue: string): Promise<number> {
  try {
    const connection = await amqp.connect(url);
    try {
      const channel = await connection.createChannel();
      return (await channel.checkQueue(queue)).consumerCount;
    } finally {
      await connection.close();
    }
  } catch {
    return 0;
  }
}
