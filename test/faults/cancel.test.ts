import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processesIn, tasker, waitFor } from '../helpers/cli.js';
import {
  brokerUrl,
  eachFleet,
  queueDepth,
  startWorkers,
  type WorkerProcess,
} from '../helpers/fleet.js';
import { ledgerOf } from '../helpers/ledger.js';
import { count } from './figures.js';
import { linesOf } from './support.js';

let dir: string;
let queue: string;
let workers: WorkerProcess[];
eachFleet((fleet) => ({ dir, queue, workers } = fleet), { leftovers: 'wait' });

const status = async (run: string) =>
  JSON.parse((await tasker(['status', '--json', '--run-id', run], { cwd: dir })).stdout);

describe('faults: tasker cancel', () => {
  it('stops a distributed run: running tasks killed, queued ones dropped, the ledger says cancelled', async () => {
    const lines = Array.from(
      { length: 12 },
      (_, i) => `echo ${i} >> started.txt; sleep 20; echo ${i} >> done.txt`,
    );
    writeFileSync(join(dir, 'jobs.sh'), `${lines.join('\n')}\n`);
    const env = { RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue };
    workers.push(...startWorkers(2, { cwd: dir, queue }));
    const run = tasker(['run', 'jobs.sh', '--run-id', 'cancel-1'], { cwd: dir, env });
    await waitFor(() => linesOf(dir, 'started.txt').length >= 2, 30_000, 'two tasks started');
    const cancelled = await tasker(['cancel', '--run-id', 'cancel-1'], { cwd: dir, env });
    expect(cancelled.exitCode).toBe(0);
    expect(cancelled.stdout).toBe(
      'cancelled run cancel-1: its tasker stopped and recorded it; workers told to stop its tasks',
    );
    const result = await run;
    expect(result.exitCode).toBe(130);
    expect(result.stderr).toContain('run cancel-1 cancelled');
    // Running tasks were killed, not left to finish; queued ones were dropped, not run.
    await waitFor(
      async () => (await queueDepth(queue)) === 0,
      20_000,
      'the queue drained of the cancelled tasks',
    );
    expect(linesOf(dir, 'done.txt')).toEqual([]);
    expect(linesOf(dir, 'started.txt').length).toBeLessThan(12);
    expect(
      ledgerOf(join(dir, '.warren'), 'cancel-1').some((record) => record.type === 'cancel'),
    ).toBe(true);
    const report = await status('cancel-1');
    expect(report.state).toBe('cancelled');
    expect(report.tasks.every((task: { state: string }) => task.state === 'cancelled')).toBe(true);
    expect(await queueDepth('warren.results.cancel-1')).toBe(-1);
    count({ tasksRun: linesOf(dir, 'started.txt').length });
  });

  it('stops a local run from another shell, and marks a run with no tasker left cancelled', async () => {
    writeFileSync(
      join(dir, 'jobs.sh'),
      'sleep 20; echo a >> done.txt\nsleep 20; echo b >> done.txt\n',
    );
    const run = tasker(['run', 'jobs.sh', '-j', '2', '--run-id', 'cancel-2'], { cwd: dir });
    await waitFor(() => processesIn(dir).length >= 4, 10_000, 'the tasks running');
    const cancelled = await tasker(['cancel'], { cwd: dir });
    expect(cancelled.stdout).toBe(
      'cancelled run cancel-2: its tasker stopped and recorded it; no broker configured, so no workers told',
    );
    expect((await run).exitCode).toBe(130);
    expect(linesOf(dir, 'done.txt')).toEqual([]);
    expect((await status('cancel-2')).state).toBe('cancelled');
    // A cancelled run is over: running it again is refused, and changes nothing.
    const again = await tasker(['run', 'jobs.sh', '--run-id', 'cancel-2'], { cwd: dir });
    expect(again.exitCode).toBe(2);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(/run cancel-2 was cancelled .*start a new run/);
    expect((await status('cancel-2')).state).toBe('cancelled');
    expect(linesOf(dir, 'done.txt')).toEqual([]);
    // With no tasker running, `cancel` writes the ledger itself.
    writeFileSync(join(dir, 'later.sh'), 'false\n');
    await tasker(['run', 'later.sh', '--run-id', 'cancel-3', '--retries', '0'], { cwd: dir });
    expect((await tasker(['cancel', '--run-id', 'cancel-3'], { cwd: dir })).stdout).toMatch(
      /^cancelled run cancel-3: recorded in its ledger/,
    );
    expect((await status('cancel-3')).state).toBe('cancelled');
  });
});
