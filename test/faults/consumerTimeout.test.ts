import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateNode } from '../helpers/broker.js';
import { logLines, processesIn, tasker, tempDir, waitFor, worker } from '../helpers/cli.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';
import { count } from './figures.js';
import { linesOf } from './support.js';

let node: PrivateNode;
let dir: string;
let cleanup: () => void;

beforeAll(async () => {
  // RabbitMQ checks for late acknowledgements about once a minute, whatever the timeout.
  node = await PrivateNode.start(['consumer_timeout = 5000']);
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
    const env = { RABBITMQ_URL: node.url };
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
});
