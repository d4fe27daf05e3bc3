import type { Message } from 'amqplib';
import { describe, expect, it } from 'vitest';
import type { TaskMessage } from '../../shared/protocol.js';
import {
  decodeResultsMessage,
  decodeTasks,
  encodeResults,
  encodeTasks,
} from '../../shared/wire.js';

const task = (n: number): TaskMessage => ({
  v: 1,
  run: 'r-1',
  phase: 'metrics',
  task: `${n}`.padStart(16, '0'),
  attempt: 1,
  command: `echo ${n}`,
  timeoutMs: 0,
});

/** A message as a consumer gets it, from what was published. */
function delivered(
  published: { content: Buffer; options: object },
  fields: object = { exchange: '' },
): Message {
  return {
    content: published.content,
    fields,
    properties: { headers: {}, ...published.options },
  } as unknown as Message;
}

describe('batches on the wire', () => {
  it('a batch of tasks reads back as its tasks, each whole, with the run and reply-to once', () => {
    const published = encodeTasks([task(1), task(2), task(3)]);
    expect(published.options).toMatchObject({
      type: 'warren.batch',
      messageId: 'batch.0000000000000001.1',
      replyTo: 'warren.results.r-1',
    });
    const body = JSON.parse(published.content.toString());
    expect(body.tasks[0]).not.toHaveProperty('run');
    const decoded = decodeTasks(delivered(published));
    expect(decoded).toEqual({
      ok: true,
      value: { tasks: [task(1), task(2), task(3)], replyTo: 'warren.results.r-1' },
    });
  });

  it('one task is still a plain task message, which a pika client can send', () => {
    const published = encodeTasks([task(7)]);
    expect(published.options).toMatchObject({ type: 'warren.task', messageId: task(7).task });
    expect(JSON.parse(published.content.toString())).toEqual(task(7));
  });

  it('a batch with one bad task is refused whole, saying which', () => {
    const published = encodeTasks([task(1), task(2)]);
    const body = JSON.parse(published.content.toString());
    body.tasks[1].attempt = 0;
    const decoded = decodeTasks(
      delivered({ ...published, content: Buffer.from(JSON.stringify(body)) }),
    );
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) expect(decoded.reason).toMatch(/tasks\.1\.attempt/);
  });

  it('results travel together, and one that cannot be read does not spoil the others', () => {
    const now = new Date().toISOString();
    const result = {
      ...task(1),
      state: 'succeeded' as const,
      failure: null,
      reason: null,
      worker: 'w-1',
      host: 'h',
      startedAt: now,
      finishedAt: now,
      exitCode: 0,
      signal: null,
      stdoutTail: '1\n',
      stderrTail: '',
      logs: null,
    };
    const { command: _command, timeoutMs: _timeout, ...own } = result;
    const published = encodeResults([own, { ...own, task: task(2).task }]);
    expect(published.options.type).toBe('warren.results');
    const body = JSON.parse(published.content.toString());
    body.results[1].state = 'exploded';
    const event = decodeResultsMessage(
      delivered(
        { ...published, content: Buffer.from(JSON.stringify(body)) },
        {
          exchange: 'warren.results',
        },
      ),
    );
    expect(event.kind).toBe('results');
    if (event.kind !== 'results') return;
    expect(event.readings.map((reading) => reading.kind)).toEqual(['result', 'unreadable']);
    expect(event.readings[1]).toMatchObject({
      result: { task: task(2).task, attempt: 1, failure: 'unreadable' },
    });
  });

  it('a dead-lettered batch is known as its tasks', () => {
    const published = encodeTasks([task(1), task(2)]);
    const message = delivered(published, { exchange: 'warren.dead' });
    message.properties.headers = {
      ...message.properties.headers,
      'x-death': [{ reason: 'delivery_limit', count: 1 }] as unknown as never,
    };
    const event = decodeResultsMessage(message);
    expect(event).toMatchObject({
      kind: 'dead',
      reason: 'delivery_limit',
      tasks: [task(1), task(2)],
    });
  });
});
