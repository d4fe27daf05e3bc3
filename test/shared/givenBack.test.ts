import type { Message } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { STAMP_HEADER } from '../../shared/topology.js';
import {
  decodeResultsMessage,
  decodeTasks,
  encodeGivenBack,
  encodeTask,
} from '../../shared/wire.js';

const task = {
  v: 1 as const,
  run: 'r1',
  phase: 'p',
  task: '0123456789abcdef',
  attempt: 2,
  command: 'python sim.py',
  timeoutMs: 0,
};

const asDelivered = (content: Buffer, options: object, exchange = ''): Message =>
  ({
    content,
    fields: { exchange },
    properties: { headers: {}, ...options },
  }) as unknown as Message;

describe('the run stamp and given-back notices on the wire', () => {
  it('a task carries its run stamp in a header; one without it, or with a header not a string, has none', () => {
    const stamped = encodeTask(task, 'a1b2c3d4e5f60718');
    expect(stamped.options.headers).toMatchObject({ [STAMP_HEADER]: 'a1b2c3d4e5f60718' });
    const read = decodeTasks(asDelivered(stamped.content, stamped.options));
    expect(read.ok && read.value.stamp).toBe('a1b2c3d4e5f60718');
    // A foreign client's task (no header) runs wherever it lands: no stamp to check.
    const plain = encodeTask(task);
    expect(plain.options.headers).not.toHaveProperty(STAMP_HEADER);
    const unstamped = decodeTasks(asDelivered(plain.content, plain.options));
    expect(unstamped.ok && unstamped.value.stamp).toBeUndefined();
    const odd = decodeTasks(
      asDelivered(plain.content, {
        ...plain.options,
        headers: { ...plain.options.headers, [STAMP_HEADER]: 42 },
      }),
    );
    expect(odd.ok && odd.value.stamp).toBeUndefined();
  });

  it('reads back what a worker sends, and a foreign worker notice with only run, worker and tasks', () => {
    const notice = {
      v: 1 as const,
      run: 'r1',
      worker: 'stray',
      host: 'vm-6',
      workdir: '/home/me/mk1',
      stateDir: '/home/me/mk1/.warren',
      at: '2026-12-01T10:00:00.000Z',
      tasks: [[task.task, 2] as [string, number]],
    };
    const { content, options } = encodeGivenBack(notice);
    expect(options.type).toBe('warren.given-back');
    expect(options.persistent).toBeUndefined();
    expect(decodeResultsMessage(asDelivered(content, options, 'warren.results'))).toEqual({
      kind: 'given back',
      notice,
    });
    const foreign = decodeResultsMessage(
      asDelivered(
        Buffer.from(
          JSON.stringify({ v: 1, run: 'r1', worker: 'pika', tasks: [[task.task, 1, 'x']] }),
        ),
        { type: 'warren.given-back' },
        'warren.results',
      ),
    );
    expect(foreign).toMatchObject({
      kind: 'given back',
      notice: { worker: 'pika', host: '', workdir: '', stateDir: '', tasks: [[task.task, 1, 'x']] },
    });
  });
});
