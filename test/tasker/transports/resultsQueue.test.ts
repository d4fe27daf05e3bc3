import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../shared/logger.js';
import { PROTOCOL_VERSION, type TaskResult } from '../../../shared/protocol.js';
import { resultsQueue } from '../../../shared/topology.js';
import { encodeResult, type ResultsEvent } from '../../../shared/wire.js';
import { RabbitTransport } from '../../../tasker/transports/rabbitTransport.js';
import {
  brokerUrl,
  deleteQueues,
  queueDepth,
  testQueue,
  withChannel,
} from '../../helpers/fleet.js';

const run = `rq-${Date.now().toString(36)}`;
let queue: string;

afterEach(async () => {
  await deleteQueues(queue, resultsQueue(run));
});

function result(task: string, attempt: number): TaskResult {
  const now = new Date().toISOString();
  return {
    v: PROTOCOL_VERSION,
    run,
    phase: 'phase1',
    task,
    attempt,
    state: 'succeeded',
    failure: null,
    reason: null,
    exitCode: 0,
    signal: null,
    worker: 'w1-1',
    host: 'test',
    startedAt: now,
    finishedAt: now,
    logs: null,
    stdoutTail: '',
    stderrTail: '',
  };
}

/** The tasker's transport for the run, and the results a finished run still finds queued. */
async function finishedRunWith(left: TaskResult[]): Promise<RabbitTransport> {
  queue = testQueue();
  const transport = await RabbitTransport.open({
    broker: {
      url: brokerUrl(),
      heartbeatSeconds: 30,
      connectTimeoutMs: 5000,
      reconnectTimeoutMs: 5000,
      name: 'results-queue-test',
    },
    run,
    queue,
    deliveryLimit: 3,
    window: 100,
    batchSize: 64,
    log: await createLogger({ level: 'silent', format: 'json' }),
  });
  await withChannel(async (channel) => {
    for (const each of left) {
      const { content, options } = encodeResult(each);
      channel.sendToQueue(resultsQueue(run), content, options);
    }
  });
  return transport;
}

describe("a finished run's results queue", () => {
  // The ledger of the run has attempt 1 of these two tasks.
  const recorded = new Set(['aaaaaaaaaaaaaaaa.1', 'bbbbbbbbbbbbbbbb.1']);
  const redundant = (event: ResultsEvent) =>
    event.kind !== 'result' || recorded.has(`${event.result.task}.${event.result.attempt}`);

  it('is deleted when all that is left in it is recorded already (late acks, duplicates)', async () => {
    const transport = await finishedRunWith([
      result('aaaaaaaaaaaaaaaa', 1),
      result('bbbbbbbbbbbbbbbb', 1),
    ]);
    try {
      expect(await queueDepth(resultsQueue(run))).toBe(2);
      expect(await transport.deleteResultsQueue({ redundant })).toBe(0);
      expect(await queueDepth(resultsQueue(run))).toBe(-1);
    } finally {
      await transport.close();
    }
  });

  it('is kept, every message in it, when one result left is not in the ledger', async () => {
    const transport = await finishedRunWith([
      result('aaaaaaaaaaaaaaaa', 1),
      result('cccccccccccccccc', 1),
      result('bbbbbbbbbbbbbbbb', 1),
    ]);
    try {
      expect(await transport.deleteResultsQueue({ redundant })).toBe(1);
      expect(await queueDepth(resultsQueue(run))).toBe(3);
    } finally {
      await transport.close();
    }
  });
});
