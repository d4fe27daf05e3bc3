import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import amqp from 'amqplib';
import { describe, expect, it } from 'vitest';
import { tasker } from '../helpers/cli.js';
import { brokerUrl, declareTaskQueue, eachFleet, queueDepth } from '../helpers/fleet.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';
import { count } from './figures.js';

let dir: string;
let queue: string;
eachFleet((fleet) => ({ dir, queue } = fleet));

interface Task {
  readonly v: number;
  readonly run: string;
  readonly phase: string;
  readonly task: string;
  readonly attempt: number;
}

/**
 * A worker not written by Warren, as a foreign client would be: it takes tasks off the queue
 * and answers each with the body `answer` gives for it, published as the protocol page says.
 */
async function foreignWorker(
  queueName: string,
  answer: (task: Task) => Record<string, unknown>,
): Promise<{ close: () => Promise<void> }> {
  const connection = await amqp.connect(brokerUrl());
  const channel = await connection.createConfirmChannel();
  await channel.prefetch(1);
  await channel.consume(queueName, (message) => {
    if (!message) return;
    const task = JSON.parse(message.content.toString()) as Task;
    channel.publish(
      'warren.results',
      message.properties.replyTo as string,
      Buffer.from(JSON.stringify(answer(task))),
      {
        type: 'warren.result',
        contentType: 'application/json',
        persistent: true,
        messageId: `${task.task}.${task.attempt}`,
        correlationId: task.run,
      },
      (error) => {
        if (!error) channel.ack(message);
      },
    );
  });
  return { close: () => connection.close() };
}

describe('faults: results from a foreign or newer worker', () => {
  it('takes an unreadable result and an unknown class as failures, retries, and ends', async () => {
    writeFileSync(join(dir, 'jobs.sh'), 'echo never run here\n');
    await declareTaskQueue(queue);
    const now = new Date().toISOString();
    const stranger = await foreignWorker(queue, (task) => {
      const { v, run, phase, attempt } = task;
      const id = { v, run, phase, task: task.task, attempt };
      if (attempt === 1)
        return { ...id, state: 'succeeded', worker: 'py', startedAt: now, exitCode: 'zero' };
      if (attempt === 2) return { ...id, state: 'failed', failure: 'gpu-fault' };
      return { ...id, state: 'succeeded' };
    });
    try {
      const result = await tasker(
        ['run', 'jobs.sh', '--run-id', 'foreign-1', '--retries', '2', '--retry-delay', '100ms'],
        { cwd: dir, env: { RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue } },
      );
      expect(result.stderr).not.toMatch(/dropped a message/);
      expect(result.exitCode).toBe(0);
      const ends = endsOf(ledgerOf(join(dir, '.warren'), 'foreign-1'));
      expect(ends.map((end) => [end.attempt, end.state, end.failure, end.final])).toEqual([
        [1, 'failed', 'unreadable', false],
        [2, 'failed', 'gpu-fault', false],
        [3, 'succeeded', null, true],
      ]);
      expect(ends[0]?.reason).toBe(
        'the result could not be read: exitCode: expected number, got "zero"',
      );
      expect(new Set(ends.map((end) => end.phase)).size).toBe(1);
      // The unknown class is said once.
      expect(result.stderr.match(/failure class `gpu-fault`/g)).toHaveLength(1);
      const status = JSON.parse(
        (await tasker(['status', '--json', '--run-id', 'foreign-1'], { cwd: dir })).stdout,
      );
      expect(status.state).toBe('succeeded');
      expect(status.tasks.map((task: { attempts: number }) => task.attempts)).toEqual([3]);
      expect(await queueDepth('warren.results.foreign-1')).toBe(-1);
      count({ tasksRun: 3, tasksLost: 0, recordedTwice: 0, resultsUnreadable: 2 });
    } finally {
      await stranger.close();
    }
  });
});
