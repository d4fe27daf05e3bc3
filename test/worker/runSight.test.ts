import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { logLines, tasker } from '../helpers/cli.js';
import {
  brokerUrl,
  declareTaskQueue,
  eachFleet,
  startWorkers,
  stopWorkers,
  type WorkerProcess,
  waitForConsumers,
} from '../helpers/fleet.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';

let dir: string;
let queue: string;
let workers: WorkerProcess[];
eachFleet((fleet) => ({ dir, queue, workers } = fleet));

const TASKS = 8;

/** Two sibling directories: the run's (`mk2`) and the one a worker was left running in (`mk1`). */
function directories(): { run: string; stray: string } {
  const run = join(dir, 'mk2');
  const stray = join(dir, 'mk1');
  mkdirSync(run);
  mkdirSync(stray);
  // Each task writes its output in the directory it runs in.
  const jobs = Array.from({ length: TASKS }, (_, i) => `sleep 0.5; echo ${i} > out.${i}\n`);
  writeFileSync(join(run, 'jobs.sh'), jobs.join(''));
  return { run, stray };
}

const outputsIn = (where: string) => readdirSync(where).filter((name) => name.startsWith('out.'));

describe('a worker that does not share the run working directory', () => {
  it('gives the run tasks back, says so once, and every task runs in the run directory', async () => {
    const { run, stray } = directories();
    await declareTaskQueue(queue);
    // The stray first: it is sure to be offered tasks of the run. A fixed prefetch: its
    // consumer, paused while it backs off, comes back to what it may hold (two deliveries).
    const left = startWorkers(1, {
      cwd: stray,
      queue,
      args: ['--name', 'stray', '--concurrency', '2', '--prefetch', '2'],
    })[0] as WorkerProcess;
    workers.push(left);
    await waitForConsumers(queue, 1);
    workers.push(...startWorkers(1, { cwd: run, queue }));
    await waitForConsumers(queue, 2);

    const result = await tasker(['run', 'jobs.sh', '--run-id', 'sight-1'], {
      cwd: run,
      env: { RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue },
    });
    expect(result.exitCode).toBe(0);
    // Every output is in the run's directory, none in the stray's.
    for (let i = 0; i < TASKS; i++) expect(existsSync(join(run, `out.${i}`))).toBe(true);
    expect(outputsIn(stray)).toEqual([]);
    // The ledger agrees: every task succeeded once, on the worker that shares the directory.
    const ends = endsOf(ledgerOf(join(run, '.warren'), 'sight-1'));
    expect(ends).toHaveLength(TASKS);
    expect(ends.every((end) => end.state === 'succeeded' && /^w1-/.test(end.worker))).toBe(true);
    // The tasker names the stray and where it runs.
    const said = logLines(result.stderr).filter((line) => line.msg.startsWith('worker stray'));
    expect(said).toHaveLength(1);
    expect(said[0]?.msg).toContain(`cannot see run sight-1 in its state dir ${stray}/.warren`);
    expect(said[0]?.msg).toContain(
      `it runs tasks in ${stray}, not in this run's working directory ${run}`,
    );

    // The stray backed off but still serves runs of its own directory (where the other worker
    // is the stray now): after its pause it takes tasks again.
    writeFileSync(join(stray, 'jobs.sh'), 'echo mine > mine.txt\n');
    const own = await tasker(['run', 'jobs.sh', '--run-id', 'sight-2'], {
      cwd: stray,
      env: { RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue },
    });
    expect(own.exitCode).toBe(0);
    expect(existsSync(join(stray, 'mine.txt'))).toBe(true);
    expect(existsSync(join(run, 'mine.txt'))).toBe(false);
    expect(endsOf(ledgerOf(join(stray, '.warren'), 'sight-2'))[0]?.worker).toMatch(/^stray-/);

    await stopWorkers(workers);
    const strayLog = logLines((await left).stderr);
    const lines = strayLog.filter((line) => line.msg.includes('does not share the run'));
    // Once, however many of the run's tasks it was offered.
    expect(lines).toHaveLength(1);
    expect(lines[0]?.msg).toContain(
      `run sight-1 is not in this worker's state dir ${stray}/.warren`,
    );
    expect(lines[0]?.msg).toContain(`this worker, in ${stray}, does not share`);
    // Nothing of the run was made in the stray's state dir (no slot logs, no run directory).
    expect(existsSync(join(stray, '.warren', 'runs', 'sight-1'))).toBe(false);
  });
});
