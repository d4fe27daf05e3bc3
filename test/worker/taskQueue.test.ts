import type { Channel } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../shared/protocol.js';
import { taskId } from '../../shared/taskId.js';
import { encodeTask } from '../../shared/wire.js';
import { logLines } from '../helpers/cli.js';
import {
  declareTaskQueue,
  deleteQueues,
  eachFleet,
  startWorkers,
  stopWorkers,
  type WorkerProcess,
  waitForConsumers,
  withChannel,
} from '../helpers/fleet.js';

let dir: string;
let queue: string;
let workers: WorkerProcess[];
const results = 'warren.results.gone-run';
eachFleet((fleet) => ({ dir, queue, workers } = fleet), { queues: [results] });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Publishes one task of run `gone-run`. */
function publish(channel: Channel, command: string): string {
  const task = taskId('gone-run', 'p', command);
  const { content, options } = encodeTask({
    v: PROTOCOL_VERSION,
    run: 'gone-run',
    phase: 'p',
    task,
    attempt: 1,
    command,
    timeoutMs: 0,
  });
  channel.sendToQueue(queue, content, options);
  return task;
}

/** The next message of `type` on the results queue (others are skipped). */
async function next(channel: Channel, type: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    const message = await channel.get(results, { noAck: true });
    if (message && message.properties.type === type) return JSON.parse(message.content.toString());
    if (!message) await sleep(50);
  }
  throw new Error(`no ${type} on ${results}`);
}

describe('a lost task queue', () => {
  it('makes the worker wait for it, saying so once; the running task publishes its result', async () => {
    await declareTaskQueue(queue);
    workers.push(...startWorkers(1, { cwd: dir, queue }));
    await waitForConsumers(queue, 1);
    await withChannel(async (channel) => {
      await channel.assertQueue(results, {
        durable: true,
        arguments: { 'x-queue-type': 'quorum' },
      });
      await channel.bindQueue(results, 'warren.results', results);
      const slow = publish(channel, 'sleep 2');
      expect((await next(channel, 'warren.started')).task).toBe(slow);
      // As asreview-cloud's FAQ tells its users to do.
      await channel.deleteQueue(queue);
      expect(await next(channel, 'warren.result')).toMatchObject({
        task: slow,
        state: 'succeeded',
      });
      await sleep(3000);
      // A tasker declares it again: the worker takes its tasks.
      await declareTaskQueue(queue);
      await waitForConsumers(queue, 1);
      const quick = publish(channel, 'echo back');
      expect(await next(channel, 'warren.result')).toMatchObject({
        task: quick,
        state: 'succeeded',
      });
    });
    await stopWorkers(workers);
    const messages = logLines((await workers[0])?.stderr ?? '').map((line) => line.msg);
    const gone = messages.filter((msg) => msg.includes('is gone'));
    expect(gone).toEqual([
      `task queue \`${queue}\` is gone; waiting for a tasker to declare it again`,
    ]);
    expect(messages).toContain(`task queue \`${queue}\` is back; taking tasks again`);
    expect(
      messages.filter((msg) => /does not exist|NOT_FOUND|closed by the broker/.test(msg)),
    ).toEqual([]);
    await deleteQueues(queue);
  });
});
