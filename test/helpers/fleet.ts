import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import { inject } from 'vitest';
import { declareTopology } from '../../shared/topology.js';
import { type EachTempDirOptions, eachTempDir, worker } from './cli.js';

/** The broker integration tests share. */
export const brokerUrl = (): string => inject('rabbitmqUrl');

/** A task queue of the test's own, so tests never see each other's tasks. */
export const testQueue = (): string => `warren.test.${randomBytes(4).toString('hex')}`;

export type WorkerProcess = ReturnType<typeof worker>;

/** Starts `worker` processes on a queue, in a working directory. */
export function startWorkers(
  count: number,
  options: { cwd: string; queue: string; args?: string[]; env?: Record<string, string> },
): WorkerProcess[] {
  return Array.from({ length: count }, (_, i) =>
    worker(['--queue', options.queue, '--name', `w${i + 1}`, ...(options.args ?? [])], {
      cwd: options.cwd,
      env: { RABBITMQ_URL: brokerUrl(), ...options.env },
    }),
  );
}

/** Stops workers with SIGTERM and waits for them. */
export async function stopWorkers(workers: readonly WorkerProcess[]): Promise<void> {
  for (const process of workers) process.kill('SIGTERM');
  await Promise.all(workers);
}

/** What each test of a broker test file works with. */
export interface Fleet {
  /** Its own temporary directory. */
  readonly dir: string;
  /** Its own task queue, deleted after it. */
  readonly queue: string;
  /** Workers it started (push them here): stopped after it. */
  readonly workers: WorkerProcess[];
}

/**
 * Gives each test of the file a fleet of its own (see `Fleet`), handed to `use` before the test
 * runs. After it: `stop`, its workers stopped, its queue and `queues` deleted, the leftovers
 * check of `eachTempDir` (`fail` unless told otherwise), the directory removed.
 */
export function eachFleet(
  use: (fleet: Fleet) => void,
  options: EachTempDirOptions & { readonly queues?: readonly string[] } = {},
): void {
  let fleet: Fleet;
  eachTempDir(
    (dir) => {
      fleet = { dir, queue: testQueue(), workers: [] };
      use(fleet);
    },
    {
      leftovers: options.leftovers ?? 'fail',
      stop: async () => {
        await options.stop?.();
        await stopWorkers(fleet.workers);
        await deleteQueues(fleet.queue, ...(options.queues ?? []));
      },
    },
  );
}

/** Runs `fn` with a channel on the test broker. */
export async function withChannel<T>(fn: (channel: amqp.Channel) => Promise<T>): Promise<T> {
  const connection = await amqp.connect(brokerUrl());
  try {
    // A confirm channel, so whatever `fn` published is on the broker before the connection
    // closes (closing right after a plain publish can lose the message).
    const channel = await connection.createConfirmChannel();
    channel.on('error', () => {});
    const result = await fn(channel);
    await channel.waitForConfirms().catch(() => {});
    return result;
  } finally {
    await connection.close();
  }
}

/** Messages in a queue, or -1 when it does not exist. */
export async function queueDepth(name: string): Promise<number> {
  return withChannel((channel) =>
    channel.checkQueue(name).then(
      (queue) => queue.messageCount,
      () => -1,
    ),
  );
}

/** Deletes queues a test made. */
export async function deleteQueues(...names: string[]): Promise<void> {
  const connection = await amqp.connect(brokerUrl());
  try {
    for (const name of names) {
      const channel = await connection.createChannel();
      channel.on('error', () => {});
      await channel.deleteQueue(name).catch(() => {});
      await channel.close().catch(() => {});
    }
  } finally {
    await connection.close();
  }
}

/**
 * Declares a task queue as the tasker would, so workers can attach before a run starts: a test
 * that asserts on how tasks spread over workers first waits for them with `waitForConsumers`.
 */
export async function declareTaskQueue(name: string, deliveryLimit = 4): Promise<void> {
  await withChannel((channel) => declareTopology(channel, name, deliveryLimit));
}

/** Resolves once `count` consumers listen on a queue. */
export async function waitForConsumers(name: string, count: number): Promise<void> {
  for (;;) {
    const consumers = await withChannel((channel) =>
      channel.checkQueue(name).then(
        (queue) => queue.consumerCount,
        () => 0,
      ),
    );
    if (consumers >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
