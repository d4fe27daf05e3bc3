import type { Message } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { failedResult } from '../../shared/failedResult.js';
import { decodeResultsMessage, encodeResult, type ResultsEvent } from '../../shared/wire.js';

const TASK = '0123456789abcdef';
const minimal = { v: 1, run: 'r-1', phase: 'simulate', task: TASK, attempt: 2 };

/** A message as it arrives on a run's results queue, with Warren's result properties. */
function message(
  body: unknown,
  properties: object = { messageId: `${TASK}.2`, correlationId: 'r-1' },
): Message {
  const content = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  return {
    content,
    fields: { exchange: 'warren.results', routingKey: 'warren.results.r-1' },
    properties: { type: 'warren.result', headers: {}, ...properties },
  } as unknown as Message;
}

const decode = (body: unknown, properties?: object) =>
  decodeResultsMessage(message(body, properties));

function resultOf(event: ResultsEvent) {
  if (event.kind !== 'result') throw new Error(`not a result: ${JSON.stringify(event)}`);
  return event.result;
}

describe('reading a result', () => {
  it('reads a minimal success, every other field at its default', () => {
    const before = Date.now();
    const result = resultOf(decode({ ...minimal, state: 'succeeded' }));
    expect(result).toMatchObject({
      ...minimal,
      state: 'succeeded',
      failure: null,
      reason: null,
      exitCode: null,
      signal: null,
      logs: null,
      stdoutTail: '',
      stderrTail: '',
      worker: '',
      host: '',
    });
    expect(Date.parse(result.finishedAt)).toBeGreaterThanOrEqual(before - 1);
    expect(result.startedAt).toBe(result.finishedAt);
    expect(result).not.toHaveProperty('uploaded');
    expect(result).not.toHaveProperty('uploadMs');
    expect(result).not.toHaveProperty('spawned');
  });

  it("takes a Python client's success without failure, reason, exitCode, signal and logs", () => {
    const result = resultOf(
      decode({
        ...minimal,
        state: 'succeeded',
        worker: 'py-1',
        host: 'box',
        startedAt: '2026-11-21T20:36:43.120456+00:00',
        finishedAt: '2026-11-21T20:36:51.004312',
        stdoutTail: 'hello\n',
        stderrTail: '',
        extra: 'ignored',
      }),
    );
    expect(result.state).toBe('succeeded');
    expect(result.failure).toBeNull();
    expect(result.startedAt).toBe('2026-11-21T20:36:43.120Z');
    expect(result.stdoutTail).toBe('hello\n');
    expect(result).not.toHaveProperty('extra');
  });

  it('reads nulls as absent where a default is documented', () => {
    const result = resultOf(
      decode({ ...minimal, state: 'succeeded', worker: null, stdoutTail: null, uploaded: null }),
    );
    expect(result).toMatchObject({ worker: '', stdoutTail: '' });
    expect(result).not.toHaveProperty('uploaded');
  });

  it('gives a failure without a class one, and a reason in the worker words', () => {
    expect(resultOf(decode({ ...minimal, state: 'failed', exitCode: 3 }))).toMatchObject({
      failure: 'exit',
      reason: 'exit 3',
      exitCode: 3,
    });
    expect(resultOf(decode({ ...minimal, state: 'failed', signal: 'SIGKILL' }))).toMatchObject({
      failure: 'signal',
      reason: 'killed by SIGKILL',
    });
    expect(resultOf(decode({ ...minimal, state: 'failed' }))).toMatchObject({
      failure: 'exit',
      reason: 'class exit, no reason given',
    });
    // What the client gave is kept.
    expect(
      resultOf(decode({ ...minimal, state: 'failed', failure: 'oom', reason: 'out of memory' })),
    ).toMatchObject({ failure: 'oom', reason: 'out of memory' });
  });

  it('keeps a failure class it does not know as given', () => {
    const result = resultOf(decode({ ...minimal, state: 'failed', failure: 'gpu-fault' }));
    expect(result.state).toBe('failed');
    expect(result.failure).toBe('gpu-fault');
    expect(result.reason).toBe('class gpu-fault, no reason given');
  });

  it("reads Warren's own results unchanged", () => {
    const own = failedResult(
      { run: 'r-1', phase: 'simulate', task: TASK, attempt: 1 },
      {
        failure: 'timeout',
        reason: 'timed out after 1s',
        worker: 'w-1',
        host: 'h',
        startedAt: '2026-11-21T20:36:43.120Z',
        finishedAt: '2026-11-21T20:36:44.120Z',
      },
    );
    const encoded = encodeResult({ ...own, uploadMs: 5, spawned: ['echo more'] });
    expect(resultOf(decode(encoded.content, encoded.options))).toEqual({
      ...own,
      uploadMs: 5,
      spawned: ['echo more'],
    });
  });
});

describe('a result that cannot be read', () => {
  it("is its attempt's failure, the validation error its reason", () => {
    const event = decode({ ...minimal, state: 'succeeded', exitCode: 'zero' });
    expect(event.kind).toBe('unreadable');
    if (event.kind !== 'unreadable') return;
    expect(event.result).toMatchObject({
      ...minimal,
      state: 'failed',
      failure: 'unreadable',
      reason: 'the result could not be read: exitCode: expected number, got "zero"',
    });
  });

  it('names its attempt from the properties when the body cannot', () => {
    for (const body of [Buffer.from('not json {'), { v: 1, state: 'succeeded' }, [1, 2]]) {
      const event = decode(body);
      expect(event.kind).toBe('unreadable');
      if (event.kind !== 'unreadable') continue;
      expect(event.result).toMatchObject({ run: 'r-1', task: TASK, attempt: 2, phase: '' });
    }
    const event = decode(Buffer.from('not json {'));
    expect(event.kind === 'unreadable' && event.reason).toBe(
      'the result could not be read: its body is not JSON',
    );
  });

  it('is a failure even with its phase missing (the phase matches by task and attempt)', () => {
    const { phase: _, ...phaseless } = minimal;
    const event = decode({ ...phaseless, state: 'succeeded' }, {});
    expect(event.kind).toBe('unreadable');
    if (event.kind !== 'unreadable') return;
    expect(event.result).toMatchObject({ run: 'r-1', task: TASK, attempt: 2, phase: '' });
    expect(event.reason).toBe('the result could not be read: phase: missing');
  });

  it('is a failure when a required field is wrong or the state unknown', () => {
    const reasonOf = (body: unknown) => {
      const event = decode(body);
      return event.kind === 'unreadable' ? event.reason : event.kind;
    };
    expect(reasonOf({ ...minimal })).toBe('the result could not be read: state: missing');
    expect(reasonOf({ ...minimal, state: 'skipped' })).toMatch(/state: expected .*got "skipped"/);
    expect(reasonOf({ ...minimal, v: 2, state: 'succeeded' })).toBe(
      'the result could not be read: protocol version 2, this Warren speaks 1',
    );
    expect(reasonOf({ ...minimal, state: 'failed', failure: 7 })).toMatch(/failure: expected/);
    expect(reasonOf({ ...minimal, state: 'succeeded', finishedAt: 'yesterday' })).toMatch(
      /finishedAt: expected an ISO 8601 date and time/,
    );
  });

  it('is junk when nothing names a task and attempt', () => {
    const { task: _, ...taskless } = minimal;
    const event = decode({ ...taskless, state: 'succeeded' }, { correlationId: 'r-1' });
    expect(event).toEqual({
      kind: 'junk',
      reason: 'a result that names no run, task and attempt (task: missing)',
    });
    expect(decode(Buffer.from('garbage'), {}).kind).toBe('junk');
    expect(decode(Buffer.from('garbage'), { messageId: 'hello', correlationId: 'r-1' }).kind).toBe(
      'junk',
    );
  });

  it('leaves messages of other types alone: a newer kind of message is no result', () => {
    expect(decode({ ...minimal }, { type: 'warren.something-new' }).kind).toBe('junk');
  });
});
