import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { resultsQueue } from '../../shared/topology.js';
import { logLines, tasker, waitFor, worker } from '../helpers/cli.js';
import {
  brokerUrl,
  declareTaskQueue,
  eachFleet,
  queueDepth,
  waitForConsumers,
  withChannel,
} from '../helpers/fleet.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';
import { count } from './figures.js';
import { ledgerFaults, linesOf, taskIds } from './support.js';

const run = promisify(execFile);
const ctl = inject('rabbitmqCtl');

/**
 * `rabbitmqctl purge_queue NAME` (or `delete_queue`) on the suite's broker, as an operator
 * types it; over AMQP where the suite was given a broker it cannot run rabbitmqctl on.
 */
async function operator(action: 'purge_queue' | 'delete_queue', queue: string): Promise<void> {
  const [command, ...rest] = ctl;
  if (command) {
    await run(command, [...rest, action, queue]);
    return;
  }
  await withChannel(async (channel) => {
    if (action === 'purge_queue') await channel.purgeQueue(queue);
    else await channel.deleteQueue(queue);
  });
}

let dir: string;
let queue: string;
let workers: ReturnType<typeof worker>[] = [];
eachFleet((made) => ({ dir, queue, workers } = made));

/** Short bounds, so a test waits seconds where a user waits a minute. */
const env = (extra: Record<string, string> = {}) => ({
  RABBITMQ_URL: brokerUrl(),
  WARREN_QUEUE: queue,
  WARREN_LOST_AFTER: '4s',
  WARREN_LEASE_INTERVAL: '1s',
  ...extra,
});

const jobs = (n: number, line: (i: number) => string) =>
  writeFileSync(
    join(dir, 'jobs.sh'),
    `${Array.from({ length: n }, (_, i) => line(i)).join('\n')}\n`,
  );

/** Every task of the run succeeded, each recorded once. */
function expectAllOnce(runId: string, n: number) {
  const stateDir = join(dir, '.warren');
  const tasks = taskIds(stateDir, runId);
  expect(tasks).toHaveLength(n);
  const { lost, twice } = ledgerFaults(stateDir, runId, tasks);
  expect(lost).toEqual([]);
  expect(twice).toEqual([]);
  return { lost, twice };
}

const said = (stderr: string, pattern: RegExp) =>
  logLines(stderr).filter((line) => pattern.test(line.msg));

describe('faults: the barrier accounts for every task', () => {
  for (const action of ['purge_queue', 'delete_queue'] as const) {
    it(`the task queue emptied with rabbitmqctl ${action} mid-phase: its tasks run again, each recorded once`, async () => {
      // Fewer than a phase's first tasks, which go one to a message: all of them wait queued.
      jobs(12, (i) => `echo ${i} >> done.txt`);
      const running = tasker(['run', 'jobs.sh', '--run-id', action], { cwd: dir, env: env() });
      await waitFor(async () => (await queueDepth(queue)) === 12, 30_000, '12 tasks queued');
      await operator(action, queue);
      workers.push(worker(['--name', 'w1'], { cwd: dir, env: env() }));
      const result = await running;
      expect(result.exitCode).toBe(0);
      const lines = said(result.stderr, /vanished from/);
      expect(lines).toHaveLength(1);
      expect(lines[0]?.msg).toContain(
        `12 tasks of phase phase1 vanished from ${queue} (${action === 'purge_queue' ? 'purged or deleted?' : 'deleted'}); publishing them again - use tasker cancel to stop a run`,
      );
      expect(new Set(linesOf(dir, 'done.txt')).size).toBe(12);
      const { lost, twice } = expectAllOnce(action, 12);
      // Published again as a new attempt that uses up none of the task's retries.
      const ends = endsOf(ledgerOf(join(dir, '.warren'), action));
      expect(ends.every((end) => end.attempt === 2 && end.state === 'succeeded')).toBe(true);
      count({
        tasksRun: linesOf(dir, 'done.txt').length,
        tasksLost: lost.length,
        recordedTwice: twice.length,
        queuesEmptied: 1,
      });
    });
  }

  it('the task queue purged while batches of short tasks wait in it: each of their tasks runs again, recorded once', async () => {
    jobs(600, (i) => `echo ${i} >> done.txt`);
    const w1 = worker(['--name', 'w1', '--concurrency', '1'], { cwd: dir, env: env() });
    workers.push(w1);
    const running = tasker(['run', 'jobs.sh', '--run-id', 'batches'], { cwd: dir, env: env() });
    // Past the phase's first tasks: the rest travel in batches. Freeze the worker with
    // batches queued behind what it holds, and purge them.
    await waitFor(() => linesOf(dir, 'done.txt').length >= 40, 30_000, 'the first tasks done');
    w1.kill('SIGSTOP');
    await waitFor(async () => (await queueDepth(queue)) >= 2, 30_000, 'batches queued');
    const messages = await queueDepth(queue);
    await operator('purge_queue', queue);
    w1.kill('SIGCONT');
    const result = await running;
    expect(result.exitCode).toBe(0);
    expect(said(result.stderr, /publishing them in batches|to a message/).length).toBeGreaterThan(
      0,
    );
    const lines = said(result.stderr, /vanished from/);
    expect(lines.length).toBeGreaterThanOrEqual(1);
    // Counted in tasks, not in messages.
    const vanished = lines.reduce(
      (sum, line) => sum + Number(/^(\d+) tasks?/.exec(line.msg)?.[1]),
      0,
    );
    expect(vanished).toBeGreaterThan(messages);
    expect(new Set(linesOf(dir, 'done.txt')).size).toBe(600);
    const { lost, twice } = expectAllOnce('batches', 600);
    count({
      tasksRun: linesOf(dir, 'done.txt').length,
      tasksLost: lost.length,
      recordedTwice: twice.length,
      queuesEmptied: 1,
    });
  });

  it('results deleted from the results queue before the tasker read them: those tasks run again', async () => {
    jobs(4, (i) => `echo ${i} >> started.txt; sleep 0.5; echo ${i} >> done.txt`);
    workers.push(worker(['--name', 'w1'], { cwd: dir, env: env() }));
    const first = tasker(['run', 'jobs.sh', '--run-id', 'unread'], { cwd: dir, env: env() });
    await waitFor(() => linesOf(dir, 'started.txt').length >= 1, 30_000, 'a task started');
    // The tasker pod dies; its results pile up; somebody purges them before it is back.
    first.kill('SIGKILL');
    await first;
    await waitFor(() => linesOf(dir, 'done.txt').length >= 4, 30_000, 'every task ran');
    await waitFor(
      async () => (await queueDepth(resultsQueue('unread'))) >= 3,
      30_000,
      'results waiting',
    );
    await operator('purge_queue', resultsQueue('unread'));
    const result = await tasker(['run', 'jobs.sh', '--run-id', 'unread'], {
      cwd: dir,
      env: env(),
    });
    expect(result.exitCode).toBe(0);
    expect(said(result.stderr, /vanished from/).length).toBeGreaterThanOrEqual(1);
    const { lost, twice } = expectAllOnce('unread', 4);
    count({
      tasksRun: linesOf(dir, 'started.txt').length,
      taskerRestarts: 1,
      tasksLost: lost.length,
      recordedTwice: twice.length,
      resultsLost: 1,
    });
  });

  it('a frozen worker (SIGSTOP) holding a task: the task runs elsewhere, recorded once', async () => {
    jobs(4, (i) => `echo ${i} >> started.txt; sleep 1; echo ${i} >> done.txt`);
    await declareTaskQueue(queue);
    const frozen = worker(['--name', 'frozen'], { cwd: dir, env: env() });
    workers.push(frozen);
    await waitForConsumers(queue, 1);
    const running = tasker(['run', 'jobs.sh', '--run-id', 'frozen'], { cwd: dir, env: env() });
    await waitFor(() => linesOf(dir, 'started.txt').length >= 1, 30_000, 'a task started');
    frozen.kill('SIGSTOP');
    try {
      workers.push(worker(['--name', 'thawed'], { cwd: dir, env: env() }));
      const result = await running;
      expect(result.exitCode).toBe(0);
      const { lost, twice } = expectAllOnce('frozen', 4);
      expect(new Set(linesOf(dir, 'done.txt')).size).toBe(4);
      count({
        tasksRun: linesOf(dir, 'started.txt').length,
        tasksLost: lost.length,
        recordedTwice: twice.length,
        workersFrozen: 1,
      });
    } finally {
      frozen.kill('SIGCONT');
    }
  });
});

describe('faults: waiting is said, not silent', () => {
  it('no worker consuming: the tasker says so, status shows it, and the run ends once a worker starts', async () => {
    jobs(3, (i) => `echo ${i} >> done.txt`);
    const running = tasker(['run', 'jobs.sh', '--run-id', 'nobody'], { cwd: dir, env: env() });
    let stderr = '';
    running.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const warning = `no worker is consuming ${queue}: start workers (worker, or kubectl scale deploy/warren-worker)`;
    await waitFor(() => stderr.includes(warning), 40_000, 'the no-worker warning');
    // Status shows it too (the tasker writes what it last heard of the broker within 250 ms).
    let status: Awaited<ReturnType<typeof tasker>> | undefined;
    await waitFor(
      async () => {
        status = await tasker(['status', '--run-id', 'nobody'], { cwd: dir, env: env() });
        return String(status.stdout).includes(warning);
      },
      10_000,
      'the warning in tasker status',
    );
    expect(status?.exitCode).toBe(0);
    expect(status?.stdout).toMatch(
      new RegExp(`${queue.replace(/\./g, '\\.')} holds 3 ready task\\(s\\), 0 consumer\\(s\\)`),
    );
    const json = JSON.parse(
      (await tasker(['status', '--run-id', 'nobody', '--json'], { cwd: dir, env: env() })).stdout,
    );
    expect(json.broker).toMatchObject({ queue, ready: 3, consumers: 0, note: warning });
    workers.push(worker(['--name', 'late'], { cwd: dir, env: env() }));
    const result = await running;
    expect(result.exitCode).toBe(0);
    expect(said(result.stderr, /no worker is consuming/)).toHaveLength(1);
    expect(said(result.stderr, /vanished/)).toEqual([]);
    const { lost, twice } = expectAllOnce('nobody', 3);
    count({ tasksRun: 3, tasksLost: lost.length, recordedTwice: twice.length });
  });
});

describe('faults: unique identities', () => {
  it('two workers with one name: the second refuses to start with one line, and the first works on', async () => {
    jobs(4, (i) => `echo ${i} >> done.txt`);
    await declareTaskQueue(queue);
    workers.push(worker(['--name', 'vm-6'], { cwd: dir, env: env() }));
    await waitForConsumers(queue, 1);
    const second = await worker(['--name', 'vm-6'], { cwd: dir, env: env() });
    expect(second.exitCode).toBe(2);
    expect(second.stderr.trim().split('\n')).toHaveLength(1);
    expect(second.stderr).toMatch(/worker name `vm-6` is in use by another worker/);
    const result = await tasker(['run', 'jobs.sh', '--run-id', 'names'], { cwd: dir, env: env() });
    expect(result.exitCode).toBe(0);
    const { lost, twice } = expectAllOnce('names', 4);
    count({ tasksRun: 4, tasksLost: lost.length, recordedTwice: twice.length, namesClashed: 1 });
  });
});
