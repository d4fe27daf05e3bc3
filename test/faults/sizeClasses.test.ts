import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { classQueue } from '../../shared/topology.js';
import type { RecordOf } from '../../tasker/ledger/records.js';
import { cliEnv, processesIn, ROOT, tasker, waitFor, worker } from '../helpers/cli.js';
import { brokerUrl, deleteQueues, eachFleet } from '../helpers/fleet.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';
import { count } from './figures.js';
import { memoryCgroup } from './memoryCgroup.js';

let dir: string;
let queue: string;
eachFleet((fleet) => ({ dir, queue } = fleet), {
  leftovers: 'wait',
  stop: async () => deleteQueues(classQueue(queue, 'large')),
});

const MB = 1024 * 1024;
const env = () => ({ RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue });
/** A task that needs about 300 MB: more than a 150 MB worker has, less than an 800 MB one. */
const HUNGRY = 'head -c 300M /dev/zero | tail > /dev/null && echo fed >> fed.txt';

/** A worker inside a memory cgroup of `limit` bytes, as in a container with that limit. */
function boxedWorker(limit: number, args: readonly string[]) {
  const cgroup = memoryCgroup(limit);
  if (!cgroup) return undefined;
  const process = execa(
    'sh',
    [
      '-c',
      `echo $$ > ${cgroup.procs} && exec node ${join(ROOT, 'dist', 'worker', 'cli.js')} ${args.join(' ')}`,
    ],
    { cwd: dir, env: cliEnv(env()), extendEnv: false, reject: false },
  );
  return { process, remove: cgroup.remove };
}

type Boxed = NonNullable<ReturnType<typeof boxedWorker>>;

async function stopBoxed(workers: readonly Boxed[]): Promise<void> {
  for (const boxed of workers) boxed.process.kill('SIGTERM');
  await Promise.all(workers.map((boxed) => boxed.process));
  await waitFor(() => processesIn(dir).length === 0, 10_000, 'the boxed workers gone');
  for (const boxed of workers) boxed.remove();
}

const queuedOf = (run: string) =>
  ledgerOf(join(dir, '.warren'), run).filter(
    (record): record is RecordOf<'queued'> => record.type === 'queued',
  );

describe('faults: size classes', () => {
  it('a task the OOM killer killed on a small worker runs again on a large one, without a retry', async (context) => {
    const small = boxedWorker(150 * MB, ['--name', 'small']);
    const large = boxedWorker(800 * MB, ['--name', 'large', '--class', 'large']);
    const boxed = [small, large].filter((made): made is Boxed => made !== undefined);
    if (boxed.length < 2) {
      await stopBoxed(boxed);
      context.skip(
        'cannot create memory cgroups here (needs root and a writable cgroup hierarchy)',
      );
      return;
    }
    try {
      writeFileSync(join(dir, 'jobs.sh'), `echo fine\n${HUNGRY}\n`);
      const result = await tasker(
        ['run', 'jobs.sh', '--run-id', 'up-1', '--classes', 'default,large', '--retries', '0'],
        { cwd: dir, env: env() },
      );
      expect(result.exitCode).toBe(0);
      const ends = endsOf(ledgerOf(join(dir, '.warren'), 'up-1')).filter((end) =>
        end.command.startsWith('head'),
      );
      // Attempt 1 on the default class, killed; attempt 2 on the large class, fed. --retries 0
      // would have left no retry: the move used none.
      expect(
        ends.map((end) => [end.attempt, end.class, end.state, end.failure, end.final]),
      ).toEqual([
        [1, 'default', 'failed', 'oom', false],
        [2, 'large', 'succeeded', null, true],
      ]);
      expect(ends.map((end) => end.worker.split('-')[0])).toEqual(['small', 'large']);
      const task = ends[0]?.task;
      expect(
        queuedOf('up-1')
          .filter((record) => record.tasks.some(([id]) => id === task))
          .map((record) => record.class),
      ).toEqual(['default', 'large']);
      expect(result.stderr).toMatch(
        /task killed by the OOM killer on size class default; publishing it to size class large/,
      );
      const status = JSON.parse(
        (await tasker(['status', '--json', '--run-id', 'up-1'], { cwd: dir })).stdout,
      );
      expect(status.tasks.find((entry: { id: string }) => entry.id === task)).toMatchObject({
        state: 'succeeded',
        attempts: 2,
        class: 'large',
      });
      count({ tasksRun: 3 });
    } finally {
      await stopBoxed(boxed);
    }
  });

  it('a task the OOM killer killed on the largest class fails, saying so', async (context) => {
    const small = boxedWorker(150 * MB, ['--name', 'small']);
    const alsoSmall = boxedWorker(150 * MB, ['--name', 'large', '--class', 'large']);
    const boxed = [small, alsoSmall].filter((made): made is Boxed => made !== undefined);
    if (boxed.length < 2) {
      await stopBoxed(boxed);
      context.skip(
        'cannot create memory cgroups here (needs root and a writable cgroup hierarchy)',
      );
      return;
    }
    try {
      writeFileSync(join(dir, 'jobs.sh'), `${HUNGRY}\n`);
      const result = await tasker(
        ['run', 'jobs.sh', '--run-id', 'top-1', '--classes', 'default,large', '--retries', '0'],
        { cwd: dir, env: env() },
      );
      expect(result.exitCode).toBe(1);
      const ends = endsOf(ledgerOf(join(dir, '.warren'), 'top-1'));
      expect(ends.map((end) => [end.attempt, end.class, end.failure, end.final])).toEqual([
        [1, 'default', 'oom', false],
        [2, 'large', 'oom', true],
      ]);
      expect(ends[1]?.reason).toMatch(
        /OOM killer.* on size class large, the largest \(--classes default,large\)$/,
      );
      expect(result.stderr).toMatch(/on size class large, the largest/);
      count({ tasksRun: 2 });
    } finally {
      await stopBoxed(boxed);
    }
  });

  it('a task waiting on a class no worker serves is said, and runs once one comes', async (context) => {
    const small = boxedWorker(150 * MB, ['--name', 'small']);
    if (!small) {
      context.skip(
        'cannot create a memory cgroup here (needs root and a writable cgroup hierarchy)',
      );
      return;
    }
    let large: ReturnType<typeof worker> | undefined;
    try {
      writeFileSync(join(dir, 'jobs.sh'), `${HUNGRY}\n`);
      const run = tasker(
        [
          'run',
          'jobs.sh',
          '--run-id',
          'nobody-1',
          '--classes',
          'default,large',
          '--retries',
          '0',
          '--lost-after',
          '4s',
        ],
        { cwd: dir, env: env() },
      );
      let said = '';
      run.stderr?.on('data', (chunk: Buffer) => {
        said += chunk.toString();
      });
      const line = `no worker of size class large is consuming ${classQueue(queue, 'large')}`;
      await waitFor(() => said.includes(line), 30_000, 'the no-worker line');
      // The task waits in its class queue meanwhile: not lost, not published again.
      expect(said).not.toMatch(/vanished/);
      large = worker(['--name', 'large', '--class', 'large'], { cwd: dir, env: env() });
      const result = await run;
      expect(result.exitCode).toBe(0);
      expect(result.stderr).toMatch(/worker\(s\) consuming .*\.class\.large now/);
      const ends = endsOf(ledgerOf(join(dir, '.warren'), 'nobody-1'));
      expect(ends.map((end) => [end.attempt, end.class, end.state])).toEqual([
        [1, 'default', 'failed'],
        [2, 'large', 'succeeded'],
      ]);
      count({ tasksRun: 2 });
    } finally {
      large?.kill('SIGTERM');
      await large;
      await stopBoxed([small]);
    }
  });
});
