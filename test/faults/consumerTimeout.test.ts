import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokerVersion, PrivateNode } from '../helpers/broker.js';
import { logLines, processesIn, tasker, tempDir, waitFor, worker } from '../helpers/cli.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';
import { count } from './figures.js';
import { linesOf } from './support.js';

let node: PrivateNode;
let dir: string;
let cleanup: () => void;
/** Whether the node takes `x-consumer-timeout` (RabbitMQ 3.11.15+; not Debian bookworm's 3.10). */
let perConsumer: boolean;

beforeAll(async () => {
  // RabbitMQ checks for late acknowledgements on each channel tick, once a minute by default:
  // a tick a second makes a 5 s timeout end a task within about 6 s.
  node = await PrivateNode.start(
    ['consumer_timeout = 5000'],
    '[{rabbit, [{channel_tick_interval, 1000}]}].',
  );
  const [major = 0, minor = 0, patch = 0] = (await brokerVersion(node.url)).split('.').map(Number);
  perConsumer = major * 1e6 + minor * 1e3 + patch >= 3_011_015;
  ({ dir, cleanup } = tempDir());
});

afterAll(async () => {
  await node?.stop();
  cleanup?.();
});

describe("faults: a task longer than the broker's consumer_timeout", () => {
  it('is stopped, said so clearly, and recorded, instead of running forever in a loop', async () => {
    // Beside it, short tasks keep the worker's second slot busy: the one running when the
    // broker takes the channel back is younger than the timeout, and must finish.
    const short = Array.from({ length: 200 }, (_, i) => `sleep 0.4; echo ${i} >> done.txt`);
    writeFileSync(join(dir, 'jobs.sh'), `sleep 300; echo never >> done.txt\n${short.join('\n')}\n`);
    // A worker that leaves the broker's consumer_timeout in force, as every worker on 3.10 does
    // (on 4.x the worker would otherwise ask for a week of its own).
    const env = { RABBITMQ_URL: node.url, WARREN_CONSUMER_TIMEOUT: '0' };
    const one = worker(['--name', 'slow', '--concurrency', '2'], { cwd: dir, env });
    const result = await tasker(['run', 'jobs.sh', '--run-id', 'lease-1'], { cwd: dir, env });
    expect(result.exitCode).toBe(1);
    const ends = endsOf(ledgerOf(join(dir, '.warren'), 'lease-1'));
    const failed = ends.filter((record) => record.state !== 'succeeded');
    expect(failed.map((record) => record.command)).toEqual(['sleep 300; echo never >> done.txt']);
    expect(ends.filter((record) => record.state === 'succeeded')).toHaveLength(200);
    expect(new Set(linesOf(dir, 'done.txt')).size).toBe(200);
    const end = failed[0];
    expect(end).toMatchObject({ state: 'failed', failure: 'lost', final: true });
    expect(end?.reason).toMatch(
      /ran longer than consumer_timeout \(5\.0s\); raise consumer_timeout above the longest task/,
    );
    one.kill('SIGTERM');
    const log = logLines((await one).stderr).map((line) => line.msg);
    expect(
      log.some((msg) =>
        /ran longer than the broker's consumer_timeout \(5\.0s\).*Raise consumer_timeout/.test(msg),
      ),
    ).toBe(true);
    // The task was stopped, not left to run its 300 seconds.
    await waitFor(() => processesIn(dir).length === 0, 10_000, 'the task gone');
    count({ tasksRun: 201, tasksLost: 0 });
  });

  it('runs to the end on RabbitMQ 3.11.15+ with no broker setting (the task queue carries its own timeout); on 3.10 is ended and reported', async () => {
    writeFileSync(join(dir, 'long.sh'), 'sleep 12; echo long >> long.txt\n');
    // A queue of its own: the tasker creates it with its x-consumer-timeout (a queue keeps the
    // arguments it was created with, and the first test's was created without).
    const env = { RABBITMQ_URL: node.url, WARREN_QUEUE: 'own.tasks' };
    const one = worker(['--name', 'own'], { cwd: dir, env });
    const result = await tasker(['run', 'long.sh', '--run-id', 'own-1'], { cwd: dir, env });
    one.kill('SIGTERM');
    await one;
    const [end] = endsOf(ledgerOf(join(dir, '.warren'), 'own-1'));
    if (perConsumer) {
      expect(result.exitCode).toBe(0);
      expect(end).toMatchObject({ state: 'succeeded', final: true });
      expect(linesOf(dir, 'long.txt')).toEqual(['long']);
    } else {
      expect(result.exitCode).toBe(1);
      expect(end).toMatchObject({ state: 'failed', failure: 'lost', final: true });
      expect(end?.reason).toMatch(
        /ran longer than consumer_timeout \(5\.0s\); raise consumer_timeout/,
      );
      expect(linesOf(dir, 'long.txt')).toEqual([]);
    }
    count({ tasksRun: 1, tasksLost: 0 });
  });
});
