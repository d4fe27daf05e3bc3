import { randomBytes } from 'node:crypto';
import type { Channel } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../shared/protocol.js';
import { taskId } from '../../shared/taskId.js';
import { encodeTask } from '../../shared/wire.js';
import {
  declareTaskQueue,
  deleteQueues,
  eachFleet,
  startWorkers,
  type WorkerProcess,
  waitForConsumers,
  withChannel,
} from '../helpers/fleet.js';

let dir: string;
let queue: string;
let workers: WorkerProcess[];
const made: string[] = [];
eachFleet((fleet) => ({ dir, queue, workers } = fleet), {
  stop: () => deleteQueues(...made.splice(0)),
});

interface Seen {
  readonly type: string;
  readonly at: number;
  readonly body: Record<string, unknown>;
}

/** A run's results queue of the test's own, as a tasker would declare it. */
async function resultsQueueOf(channel: Channel, run: string): Promise<string> {
  const name = `warren.results.${run}`;
  made.push(name);
  await channel.assertQueue(name, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await channel.bindQueue(name, 'warren.results', name);
  return name;
}

/** Publishes the commands as tasks of `run`, then reads its results queue until `results` came. */
async function runTasks(run: string, commands: string[]): Promise<Seen[]> {
  return withChannel(async (channel) => {
    const results = await resultsQueueOf(channel, run);
    const ids = commands.map((command) => taskId(run, 'p', command));
    commands.forEach((command, i) => {
      const { content, options } = encodeTask({
        v: PROTOCOL_VERSION,
        run,
        phase: 'p',
        task: ids[i] as string,
        attempt: 1,
        command,
        timeoutMs: 0,
      });
      channel.sendToQueue(queue, content, options);
    });
    const seen: Seen[] = [];
    const deadline = Date.now() + 30_000;
    while (seen.filter((m) => m.type === 'warren.result').length < commands.length) {
      if (Date.now() > deadline) throw new Error(`no results: ${JSON.stringify(seen)}`);
      const message = await channel.get(results, { noAck: true });
      if (!message) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      seen.push({
        type: String(message.properties.type),
        at: Date.now(),
        body: JSON.parse(message.content.toString()),
      });
    }
    return seen;
  });
}

describe('worker leases', () => {
  it('renews a lease per run every --lease-interval, listing held and running attempts; short tasks send none', async () => {
    await declareTaskQueue(queue);
    workers.push(
      ...startWorkers(1, {
        cwd: dir,
        queue,
        args: ['--lease-interval', '1s', '--prefetch', '2'],
      }),
    );
    await waitForConsumers(queue, 1);
    const run = `lease-${randomBytes(3).toString('hex')}`;
    const [first, second] = ['sleep 3', 'sleep 1.5'].map((command) => taskId(run, 'p', command));
    const seen = await runTasks(run, ['sleep 3', 'sleep 1.5']);
    const leases = seen.filter((m) => m.type === 'warren.lease');
    // The started notices stay (they make the ledger's start records).
    expect(seen.filter((m) => m.type === 'warren.started')).toHaveLength(2);
    // About one a second for 4.5 s: one message per run, not per task.
    expect(leases.length).toBeGreaterThanOrEqual(3);
    expect(leases.length).toBeLessThanOrEqual(6);
    for (const lease of leases) {
      expect(lease.body).toMatchObject({ v: 1, run, worker: 'w1', intervalMs: 1000 });
      expect(Date.parse(String(lease.body.at))).toBeGreaterThan(0);
    }
    // The first lists the running task and the one held for its slot; later ones the second.
    expect(leases[0]?.body.tasks).toEqual([
      [first, 1, 'running'],
      [second, 1, 'held'],
    ]);
    expect(leases.at(-1)?.body.tasks).toEqual([[second, 1, 'running']]);
    const gaps = leases.slice(1).map((lease, i) => lease.at - (leases[i]?.at ?? 0));
    for (const gap of gaps) expect(gap).toBeGreaterThan(500);

    // A run of short tasks costs no lease.
    const quick = `lease-${randomBytes(3).toString('hex')}`;
    const short = await runTasks(quick, ['true', 'sleep 0.2']);
    expect(short.map((m) => m.type)).toEqual(['warren.result', 'warren.result']);
  });
});
