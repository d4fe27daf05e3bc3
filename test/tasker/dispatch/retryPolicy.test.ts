import { describe, expect, it } from 'vitest';
import { MINUTE, SECOND } from '../../../shared/duration.js';
import { FAILURE_CLASSES, type TaskResult } from '../../../shared/protocol.js';
import { RETRIED_FAILURES, RetryPolicy, retriedAs } from '../../../tasker/dispatch/retryPolicy.js';

const result = (attempt: number, fields: Partial<TaskResult> = {}): TaskResult => ({
  v: 1,
  run: 'r',
  phase: 'p',
  task: '0123456789abcdef',
  attempt,
  state: 'failed',
  failure: 'exit',
  reason: 'exit 1',
  worker: 'local-1',
  host: 'h',
  startedAt: '2026-11-21T00:00:00.000Z',
  finishedAt: '2026-11-21T00:00:01.000Z',
  exitCode: 1,
  signal: null,
  stdoutTail: '',
  stderrTail: '',
  logs: null,
  ...fields,
});

describe('the retry policy', () => {
  const policy = new RetryPolicy({ retries: 2, retryDelayMs: SECOND });

  it('retries exactly the classes it lists: a new class is decided, not retried by default', () => {
    expect([...RETRIED_FAILURES].sort()).toEqual(
      ['exit', 'infra', 'oom', 'signal', 'timeout', 'unreadable', 'upload'].sort(),
    );
    const retried = FAILURE_CLASSES.filter((failure) => policy.retryOf(result(1, { failure }), 1));
    expect(retried).toEqual(
      FAILURE_CLASSES.filter((failure) => RETRIED_FAILURES.includes(failure)),
    );
    expect(policy.retryOf(result(1, { failure: 'lost' }), 1)).toBe(0);
    expect(policy.retryOf(result(1, { failure: 'rejected' }), 1)).toBe(0);
    // A failed result without a class (a foreign client's) is taken as the command failing.
    expect(policy.retryOf(result(1, { failure: null }), 1)).toBe(1);
  });

  it("retries a class it does not know (a newer worker's) as `exit`, and keeps the class", () => {
    const foreign = result(1, { failure: 'gpu-fault' });
    expect(retriedAs(foreign)).toBe('exit');
    expect(policy.retryOf(foreign, 1)).toBe(1);
    expect(policy.retryOf(result(3, { failure: 'gpu-fault' }), 1)).toBe(0); // retries used up
    expect(foreign.failure).toBe('gpu-fault');
    expect(retriedAs(result(1, { failure: 'lost' }))).toBe('lost');
    expect(retriedAs(result(1, { failure: null }))).toBe('exit');
  });

  it('retries an unreadable result, as the attempt failing', () => {
    expect(policy.retryOf(result(1, { failure: 'unreadable', exitCode: null }), 1)).toBe(1);
  });

  it('retries failures only, never a success or a cancelled attempt', () => {
    expect(policy.retryOf(result(1, { state: 'succeeded', failure: null }), 1)).toBe(0);
    expect(policy.retryOf(result(1, { state: 'cancelled', failure: null }), 1)).toBe(0);
  });

  it('counts retries from the first attempt of this session', () => {
    expect([1, 2, 3].map((attempt) => policy.retryOf(result(attempt), 1))).toEqual([1, 2, 0]);
    // Resumed after three attempts: the session's first is 4, and it gets its retries again.
    expect([4, 5, 6].map((attempt) => policy.retryOf(result(attempt), 4))).toEqual([1, 2, 0]);
    expect(new RetryPolicy({ retries: 0, retryDelayMs: SECOND }).retryOf(result(1), 1)).toBe(0);
  });

  it('waits the retry delay, doubled for each later retry, at most a minute', () => {
    expect([1, 2, 3, 4].map((retry) => policy.delayMs(retry))).toEqual([
      SECOND,
      2 * SECOND,
      4 * SECOND,
      8 * SECOND,
    ]);
    expect(policy.delayMs(7)).toBe(MINUTE);
    expect(new RetryPolicy({ retries: 9, retryDelayMs: 0 }).delayMs(5)).toBe(0);
  });
});
