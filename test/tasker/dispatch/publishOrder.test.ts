import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tasker, waitFor } from '../../helpers/cli.js';
import {
  brokerUrl,
  declareTaskQueue,
  eachFleet,
  startWorkers,
  type WorkerProcess,
  waitForConsumers,
} from '../../helpers/fleet.js';
import { endsOf, ledgerOf } from '../../helpers/ledger.js';

let dir: string;
let queue: string;
let workers: WorkerProcess[];
eachFleet((fleet) => ({ dir, queue, workers } = fleet));

const env = () => ({ RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue });
const state = () => join(dir, '.warren');

/** The commands of a run's phase in the order the broker confirmed it holds them. */
function queuedOrder(run: string): string[] {
  const records = ledgerOf(state(), run);
  const commands = new Map(endsOf(records).map((end) => [end.task, end.command]));
  return records.flatMap((record) =>
    record.type === 'queued' ? record.tasks.map(([id]) => commands.get(id) ?? id) : [],
  );
}

/** The commands of a run in the order its attempts started (from the `end` records). */
function ranOrder(run: string): string[] {
  return endsOf(ledgerOf(state(), run))
    .sort((a, b) => Date.parse(a.startedAt) - Date.parse(b.startedAt))
    .map((end) => end.command);
}

const orderRecord = (run: string) =>
  ledgerOf(state(), run).find((record) => record.type === 'order');

// Distinct lines (a comment each): the history keys a command by its whole text.
const A = 'sleep 0.1 # a';
const B = 'sleep 0.7 # b';
const C = 'sleep 0.4 # c';
const D = 'sleep 0.25 # d';
const NEW = 'sleep 0.05 # new';

describe('longest first, from history', () => {
  it('publishes a second run of the same jobs longest first, commands with no history first, and --order file as the file says', async () => {
    writeFileSync(join(dir, 'jobs.sh'), [A, B, C, D].join('\n'));
    // One worker of one slot: tasks run in the order they were published.
    await declareTaskQueue(queue);
    workers.push(...startWorkers(1, { cwd: dir, queue }));
    await waitForConsumers(queue, 1);

    const first = await tasker(['run', 'jobs.sh', '--run-id', 'first'], { cwd: dir, env: env() });
    expect(first.exitCode).toBe(0);
    // Nothing known yet: file order, and the ledger says so.
    expect(orderRecord('first')).toMatchObject({ by: 'file', known: 0, unknown: 4 });
    expect(queuedOrder('first')).toEqual([A, B, C, D]);

    writeFileSync(join(dir, 'jobs.sh'), [A, B, C, D, NEW].join('\n'));
    const second = await tasker(['run', 'jobs.sh', '--run-id', 'second'], {
      cwd: dir,
      env: env(),
    });
    expect(second.exitCode).toBe(0);
    expect(second.stderr).toContain(
      'phase phase1: publishing longest expected first (4 of 5 tasks took',
    );
    expect(second.stderr).toContain('the 1 without one go first');
    expect(orderRecord('second')).toMatchObject({ by: 'longest', known: 4, unknown: 1 });
    // The command with no history first, then the known ones by what they took in `first`.
    expect(queuedOrder('second')).toEqual([NEW, B, C, D, A]);
    expect(ranOrder('second')).toEqual([NEW, B, C, D, A]);

    const third = await tasker(['run', 'jobs.sh', '--run-id', 'third', '--order', 'file'], {
      cwd: dir,
      env: env(),
    });
    expect(third.exitCode).toBe(0);
    expect(orderRecord('third')).toMatchObject({ by: 'file', known: 5, unknown: 0 });
    expect(ranOrder('third')).toEqual([A, B, C, D, NEW]);
  });

  it('orders a local run the same way: its pool takes tasks in the order they come', async () => {
    writeFileSync(join(dir, 'jobs.sh'), [A, B, C, D].join('\n'));
    const local = ['--local', '-j', '1'];
    expect(
      (await tasker(['run', 'jobs.sh', ...local, '--run-id', 'l1'], { cwd: dir })).exitCode,
    ).toBe(0);
    expect(
      (await tasker(['run', 'jobs.sh', ...local, '--run-id', 'l2'], { cwd: dir })).exitCode,
    ).toBe(0);
    // Local slots report a start at once: the `start` records are the order.
    const starts = ledgerOf(state(), 'l2').flatMap((record) =>
      record.type === 'start' ? [record.task] : [],
    );
    const commands = new Map(endsOf(ledgerOf(state(), 'l2')).map((end) => [end.task, end.command]));
    expect(starts.map((id) => commands.get(id))).toEqual([B, C, D, A]);
  });

  it('keeps file order under --rules asreview-cloud, whose part 3 reads what its earlier lines write, unless --order longest', async () => {
    // Part 3 of asreview-cloud's split: a metrics line, then the merge that reads its output.
    const metrics = 'sleep 0.05; echo m > metrics.json # metrics';
    const merge = 'sleep 0.3; cat metrics.json > merged.txt # merge';
    writeFileSync(join(dir, 'jobs.sh'), ['echo simulate one', metrics, merge].join('\n'));
    const run = (id: string, ...more: string[]) =>
      tasker(['run', 'jobs.sh', '--rules', 'asreview-cloud', '-j', '1', '--run-id', id, ...more], {
        cwd: dir,
      });
    expect((await run('c1')).exitCode).toBe(0);
    const second = await run('c2');
    expect(second.exitCode).toBe(0);
    expect(
      ledgerOf(state(), 'c2').find((r) => r.type === 'order' && r.phase === 'part3'),
    ).toMatchObject({ by: 'file' });
    // Asked for, it reorders: the longer merge goes out first.
    rmSync(join(dir, 'metrics.json'));
    const third = await run('c3', '--order', 'longest', '--retries', '0');
    expect(
      ledgerOf(state(), 'c3').find((r) => r.type === 'order' && r.phase === 'part3'),
    ).toMatchObject({ by: 'longest' });
    expect(third.exitCode).toBe(1);
  });

  it('gives status --json an ETA from the durations of earlier runs while the phase runs', async () => {
    const jobs = ['sleep 1.5 # x', 'sleep 1.5 # y', 'sleep 1.5 # z'];
    writeFileSync(join(dir, 'jobs.sh'), jobs.join('\n'));
    await declareTaskQueue(queue);
    workers.push(...startWorkers(1, { cwd: dir, queue }));
    await waitForConsumers(queue, 1);
    expect(
      (await tasker(['run', 'jobs.sh', '--run-id', 'h1'], { cwd: dir, env: env() })).exitCode,
    ).toBe(0);

    const second = tasker(['run', 'jobs.sh', '--run-id', 'h2'], { cwd: dir, env: env() });
    let seen: { etaMs: number | null; etaFrom: string | null; order: string | null } | undefined;
    await waitFor(
      async () => {
        const status = await tasker(['status', '--json', '--run-id', 'h2'], { cwd: dir });
        if (status.exitCode !== 0) return false;
        const phase = JSON.parse(status.stdout).phases[0];
        if (phase?.etaFrom === 'history') seen = phase;
        return seen !== undefined;
      },
      15_000,
      'an ETA from history in status --json',
    );
    expect((await second).exitCode).toBe(0);
    // Three tasks of 1.5 s on one slot, one of them started: between a little and 4.5 s left.
    expect(seen?.order).toBe('longest');
    expect(seen?.etaMs).toBeGreaterThan(0);
    expect(seen?.etaMs).toBeLessThanOrEqual(4500);
    // Once the run is over there is nothing left to estimate.
    const after = JSON.parse(
      (await tasker(['status', '--json', '--run-id', 'h2'], { cwd: dir })).stdout,
    );
    expect(after.phases[0]).toMatchObject({ etaMs: null, etaFrom: null, order: 'longest' });
  });
});
