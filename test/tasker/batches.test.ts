import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { logLines, tasker, waitFor } from '../helpers/cli.js';
import {
  brokerUrl,
  declareTaskQueue,
  eachFleet,
  startWorkers,
  type WorkerProcess,
  waitForConsumers,
} from '../helpers/fleet.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';

let dir: string;
let queue: string;
let workers: WorkerProcess[];
eachFleet((fleet) => ({ dir, queue, workers } = fleet), { leftovers: 'wait' });

const env = () => ({ RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue });
const state = () => join(dir, '.warren');
const write = (name: string, lines: readonly string[]) =>
  writeFileSync(join(dir, name), `${lines.join('\n')}\n`);

/** Starts `count` workers with default settings (no --prefetch) and waits until they consume. */
async function fleetOf(count: number, args: string[] = []): Promise<void> {
  await declareTaskQueue(queue);
  workers.push(...startWorkers(count, { cwd: dir, queue, args }));
  await waitForConsumers(queue, count);
}

/** The batch size the tasker said it publishes a phase's tasks in, if it said one. */
function batchSizeSaid(stderr: string): number | undefined {
  const said = logLines(stderr)
    .map((line) => /publishing them (\d+) to a message/.exec(line.msg)?.[1])
    .find(Boolean);
  return said === undefined ? undefined : Number(said);
}

describe('short tasks through RabbitMQ', () => {
  it('travel in batches, each with its own attempt, result, log and ledger line; a failing one fails only itself', async () => {
    const lines = Array.from({ length: 300 }, (_, i) => `echo out-${i}`);
    lines[150] = 'echo bad-150 >&2; exit 3';
    write('jobs.sh', lines);
    await fleetOf(2);
    const result = await tasker(['run', 'jobs.sh', '--run-id', 'batches', '--retries', '0'], {
      cwd: dir,
      env: env(),
    });
    expect(result.exitCode).toBe(1);
    expect(batchSizeSaid(result.stderr)).toBeGreaterThan(1);
    const ends = endsOf(ledgerOf(state(), 'batches'));
    expect(ends).toHaveLength(300);
    expect(new Set(ends.map((end) => end.task)).size).toBe(300);
    const failed = ends.filter((end) => end.state === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ exitCode: 3, failure: 'exit', attempt: 1 });
    expect(failed[0]?.errorTail).toContain('bad-150');
    // Each task's log is its own, whichever batch it came in.
    const sample = ends.find((end) => end.command === 'echo out-250');
    const logs = await tasker(['logs', String(sample?.task), '--run-id', 'batches'], { cwd: dir });
    expect(logs.stdout.trim()).toBe('out-250');
  });

  it('a phase started before any worker is up still goes in batches once workers come', async () => {
    write(
      'jobs.sh',
      Array.from({ length: 200 }, (_, i) => `echo ${i}`),
    );
    await declareTaskQueue(queue);
    const run = tasker(['run', 'jobs.sh', '--run-id', 'late'], { cwd: dir, env: env() });
    // Longer than the probe's wait: its first tasks sit in the queue, which says nothing of them.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    workers.push(...startWorkers(2, { cwd: dir, queue }));
    const result = await run;
    expect(result.exitCode).toBe(0);
    expect(batchSizeSaid(result.stderr)).toBeGreaterThan(1);
  });

  it('a resumed run sizes its batches from its earlier sessions, from the first task', async () => {
    // Half the tasks fail until `ok` exists; the resume runs them again, knowing how long they take.
    write(
      'jobs.sh',
      Array.from({ length: 200 }, (_, i) => (i % 2 ? `test -f ok && echo ${i}` : `echo ${i}`)),
    );
    await fleetOf(2);
    const args = ['run', 'jobs.sh', '--run-id', 'again', '--retries', '0'];
    const first = await tasker(args, { cwd: dir, env: env() });
    expect(first.exitCode).toBe(1);
    writeFileSync(join(dir, 'ok'), '');
    const second = await tasker(args, { cwd: dir, env: env() });
    expect(second.exitCode).toBe(0);
    expect(second.stderr).toMatch(
      /tasks of phase phase1 took [\d.]+ ms on average in earlier sessions of the run: publishing them \d+ to a message/,
    );
    const ends = endsOf(ledgerOf(state(), 'again'));
    expect(ends.filter((end) => end.state === 'succeeded')).toHaveLength(200);
  });

  it('a worker SIGKILLed while it runs a batch: every task is recorded once, and the run succeeds', async () => {
    write(
      'jobs.sh',
      Array.from({ length: 500 }, (_, i) => `sleep 0.01; echo ${i} >> done.txt`),
    );
    await fleetOf(2);
    const run = tasker(['run', 'jobs.sh', '--run-id', 'killed'], { cwd: dir, env: env() });
    const done = () => {
      try {
        return readFileSync(join(dir, 'done.txt'), 'utf8').split('\n').filter(Boolean).length;
      } catch {
        return 0;
      }
    };
    await waitFor(() => done() >= 150, 30_000, '150 tasks done');
    workers[0]?.kill('SIGKILL');
    const result = await run;
    expect(result.exitCode).toBe(0);
    const ends = endsOf(ledgerOf(state(), 'killed'));
    expect(ends.filter((end) => end.state === 'succeeded')).toHaveLength(500);
    expect(ends).toHaveLength(500);
  });

  it('a delivery held behind a long task goes back to the queue for an idle worker', async () => {
    // w1 alone runs a phase of short tasks (so it holds a delivery more than its slot), then
    // takes both long tasks of the next phase; w2 starts only then, idle.
    write('jobs.sh', [
      ...Array.from({ length: 30 }, (_, i) => `true ${i}`),
      'wait',
      'sleep 4 # a',
      'sleep 4 # b',
    ]);
    await fleetOf(1);
    const run = tasker(['run', 'jobs.sh', '--run-id', 'held'], { cwd: dir, env: env() });
    await waitFor(
      () => {
        try {
          return ledgerOf(state(), 'held').filter((record) => record.type === 'phase').length > 1;
        } catch {
          return false;
        }
      },
      30_000,
      'the second phase',
    );
    workers.push(...startWorkers(1, { cwd: dir, queue, args: ['--name', 'w2'] }));
    const result = await run;
    expect(result.exitCode).toBe(0);
    const long = endsOf(ledgerOf(state(), 'held')).filter((end) => end.phase === 'phase2');
    expect(long).toHaveLength(2);
    // Not one after the other on w1: the second went to w2 while the first ran.
    const [first, second] = [...long].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
    expect(Date.parse(String(second?.startedAt))).toBeLessThan(
      Date.parse(String(first?.finishedAt)),
    );
  });
});
