import { createHash } from 'node:crypto';
import type { Channel } from 'amqplib';
import { InfraError } from './errors.js';

/** Names of what Warren declares on the broker (see docs/protocol.md). */
export const NAMES = {
  /** Headers exchange that takes dead-lettered tasks. */
  deadExchange: 'warren.dead',
  /** Queue that keeps a copy of every dead-lettered task, for people to inspect. */
  deadQueue: 'warren.dead',
  /** Fanout exchange for cancel and drain messages to workers. */
  controlExchange: 'warren.control',
  /**
   * Direct exchange workers publish results to (routing key: the results queue). A named
   * exchange rather than the default one, so that workers need no write access to the task queue.
   */
  resultsExchange: 'warren.results',
  /** Default task queue. */
  taskQueue: 'warren.tasks',
} as const;

/** Header carrying the run id on every task, so a dead-lettered task finds its run's queue. */
export const RUN_HEADER = 'warren-run';

/**
 * Header carrying the run's stamp (`statePaths.stamp`) on every task of Warren's tasker: a
 * worker runs a stamped task only if its own state dir holds the same stamp. A task without it
 * (a foreign client's, an older tasker's) is run wherever it lands.
 */
export const STAMP_HEADER = 'warren-stamp';

/**
 * A worker's claim on its name: an exclusive, auto-delete queue its connection declares, which
 * the broker refuses (RESOURCE_LOCKED) to any other connection while it lives.
 */
export const workerQueue = (worker: string, taskQueue: string) => {
  const name = `warren.worker.${taskQueue}.${worker}`;
  // AMQP names are at most 255 bytes: a long task queue name is stood in for by its hash.
  return Buffer.byteLength(name) <= 255
    ? name
    : `warren.worker.${createHash('sha256').update(taskQueue).digest('hex').slice(0, 16)}.${worker}`;
};

/**
 * The size class every task starts in: its queue is the task queue itself, so a Warren with no
 * size classes configured works as it always did.
 */
export const DEFAULT_CLASS = 'default';

/** A size class's name: short, lowercase, safe in queue and Kubernetes object names. */
export const CLASS_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,30}$/;

/**
 * The queue of a size class (docs/running.md, "Out of memory: a bigger worker"): the task queue
 * for `default` (or none), `<task queue>.class.<name>` for any other. Workers started with
 * `--class NAME` consume it; the tasker publishes there the tasks the OOM killer killed on the
 * class below.
 */
export const classQueue = (taskQueue: string, name: string | undefined): string =>
  name === undefined || name === DEFAULT_CLASS ? taskQueue : `${taskQueue}.class.${name}`;

/** The results queue of a run. */
export const resultsQueue = (run: string) => `warren.results.${run}`;

/** Results queues are named this way and no other: workers publish nowhere else. */
export const RESULTS_QUEUE_PATTERN = /^warren\.results\.[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Dead-letter copies kept in `warren.dead`; older ones are dropped first. */
const DEAD_QUEUE_LENGTH = 100_000;

function explain(error: unknown, what: string): never {
  const message = error instanceof Error ? error.message : String(error);
  if (/PRECONDITION_FAILED|inequivalent arg/i.test(message)) {
    throw new InfraError(
      'TOPOLOGY_MISMATCH',
      `${what} exists on the broker with other settings (${message.replace(/^.*PRECONDITION_FAILED - /, '')}); delete it or use the same settings`,
      { cause: error },
    );
  }
  if (/ACCESS_REFUSED/.test(message)) {
    throw new InfraError(
      'BROKER_FORBIDDEN',
      `the broker refused to declare ${what}: ${message.replace(/^.*ACCESS_REFUSED - /, '')}`,
      {
        cause: error,
      },
    );
  }
  throw error;
}

/**
 * Declares the shared topology, idempotently: the task queue (a durable quorum queue with a
 * delivery limit and the dead-letter exchange), the queue of each size class in `classes`
 * (the same arguments; `default` is the task queue itself), the dead-letter exchange and
 * queue, and the control exchange. The same on RabbitMQ 3.10 and 4.x but for
 * `consumerTimeoutMs`, the task queues' `x-consumer-timeout`, given only for brokers that take
 * it (docs/brokers.md lists what differs). Each call uses its own channel, since a failed declaration
 * closes it.
 */
export async function declareTopology(
  channel: Channel,
  taskQueue: string,
  deliveryLimit: number,
  classes: readonly string[] = [],
  consumerTimeoutMs?: number,
): Promise<void> {
  await channel
    .assertExchange(NAMES.deadExchange, 'headers', { durable: true })
    .catch((e) => explain(e, `exchange \`${NAMES.deadExchange}\``));
  await channel
    .assertQueue(NAMES.deadQueue, {
      durable: true,
      arguments: {
        'x-queue-type': 'quorum',
        'x-max-length': DEAD_QUEUE_LENGTH,
        'x-overflow': 'drop-head',
      },
    })
    .catch((e) => explain(e, `queue \`${NAMES.deadQueue}\``));
  // A headers binding with no headers takes every dead letter.
  await channel.bindQueue(NAMES.deadQueue, NAMES.deadExchange, '', {});
  await declareControlExchange(channel);
  await channel
    .assertExchange(NAMES.resultsExchange, 'direct', { durable: true })
    .catch((e) => explain(e, `exchange \`${NAMES.resultsExchange}\``));
  const limits = { deliveryLimit, consumerTimeoutMs };
  await declareTaskQueue(channel, taskQueue, limits, 'task queue');
  for (const name of classes) {
    const queue = classQueue(taskQueue, name);
    if (queue !== taskQueue)
      await declareTaskQueue(channel, queue, limits, `queue of size class ${name}`);
  }
}

/**
 * A queue tasks wait in: durable, quorum, with the delivery limit, the dead-letter exchange, and
 * (where the broker takes it, see `queueTimeout`) the acknowledgement timeout of its consumers.
 * The broker does not compare `x-consumer-timeout` when a queue is declared again: a queue keeps
 * the one it was created with.
 */
async function declareTaskQueue(
  channel: Channel,
  queue: string,
  limits: { readonly deliveryLimit: number; readonly consumerTimeoutMs: number | undefined },
  what: string,
): Promise<void> {
  await channel
    .assertQueue(queue, {
      durable: true,
      arguments: {
        'x-queue-type': 'quorum',
        'x-delivery-limit': limits.deliveryLimit,
        'x-dead-letter-exchange': NAMES.deadExchange,
        ...(limits.consumerTimeoutMs ? { 'x-consumer-timeout': limits.consumerTimeoutMs } : {}),
      },
    })
    .catch((e) => explain(e, `${what} \`${queue}\``));
}

/**
 * Declares the fanout exchange of control messages (cancel a run, drain workers), idempotently:
 * `tasker cancel` may be the first to speak to a broker that no tasker has set up.
 */
export async function declareControlExchange(channel: Channel): Promise<void> {
  await channel
    .assertExchange(NAMES.controlExchange, 'fanout', { durable: true })
    .catch((e) => explain(e, `exchange \`${NAMES.controlExchange}\``));
}

/**
 * Declares a run's results queue (durable, quorum) and routes the run's dead-lettered tasks
 * into it, so the tasker hears of tasks that no worker could finish.
 */
export async function declareResultsQueue(channel: Channel, run: string): Promise<string> {
  const queue = resultsQueue(run);
  await channel
    .assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } })
    .catch((e) => explain(e, `queue \`${queue}\``));
  await channel.bindQueue(queue, NAMES.resultsExchange, queue);
  await channel.bindQueue(queue, NAMES.deadExchange, '', { 'x-match': 'all', [RUN_HEADER]: run });
  return queue;
}

/**
 * Declares a worker's name queue (exclusive to this connection, deleted with it). Rejects with
 * the broker's RESOURCE_LOCKED error when another connection holds the name.
 */
export async function declareWorkerQueue(
  channel: Channel,
  worker: string,
  taskQueue: string,
): Promise<void> {
  const queue = workerQueue(worker, taskQueue);
  await channel
    .assertQueue(queue, { exclusive: true, autoDelete: true, durable: false })
    .catch((e) =>
      /RESOURCE_LOCKED/.test(String((e as Error).message))
        ? Promise.reject(e)
        : explain(e, `queue \`${queue}\``),
    );
}
