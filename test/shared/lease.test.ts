import type { Message } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { decodeResultsMessage, encodeLease, TYPE } from '../../shared/wire.js';

const message = (body: unknown, type: string = TYPE.lease): Message =>
  ({
    content: Buffer.from(JSON.stringify(body)),
    fields: { exchange: 'warren.results' },
    properties: { type, headers: {} },
  }) as unknown as Message;

const task = '0123456789abcdef';

describe('lease messages', () => {
  it('reads back what a worker sends', () => {
    const lease = {
      v: 1 as const,
      run: 'r1',
      worker: 'vm-6-12-ab01',
      host: 'vm-6',
      at: '2026-12-01T10:00:00.000Z',
      intervalMs: 15000,
      tasks: [[task, 2, 'running'] as [string, number, string]],
    };
    const { content, options } = encodeLease(lease);
    expect(options.type).toBe('warren.lease');
    expect(options.persistent).toBeUndefined();
    expect(decodeResultsMessage(message(JSON.parse(content.toString())))).toEqual({
      kind: 'lease',
      lease,
    });
  });

  it('takes a foreign worker lease that leaves out host, interval and states, or says a state it does not know', () => {
    const event = decodeResultsMessage(
      message({
        v: 1,
        run: 'r1',
        worker: 'pika-1',
        at: '2026-12-01T10:00:00Z',
        tasks: [
          [task, 1],
          [task, 2, 'uploading', 'extra'],
        ],
        note: 'ignored',
      }),
    );
    expect(event.kind).toBe('lease');
    if (event.kind !== 'lease') return;
    expect(event.lease.host).toBe('');
    expect(event.lease.tasks.map(([id, attempt]) => [id, attempt])).toEqual([
      [task, 1],
      [task, 2],
    ]);
  });

  it('drops a lease that names no worker or a bad task id, saying why', () => {
    const bad = decodeResultsMessage(
      message({ v: 1, run: 'r1', worker: 'w', at: '2026-12-01T10:00:00Z', tasks: [['xyz', 1]] }),
    );
    expect(bad).toMatchObject({
      kind: 'junk',
      reason: expect.stringMatching(/^lease does not have/),
    });
  });
});
