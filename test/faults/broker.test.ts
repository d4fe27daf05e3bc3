import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateNode } from '../helpers/broker.js';
import { processesIn, tasker, tempDir, worker } from '../helpers/cli.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';
import { count } from './figures.js';
import { ledgerFaults, linesOf, taskIds, waitFor } from './support.js';

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
