import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { logLines, tasker, waitFor } from '../../helpers/cli.js';
import {
  brokerUrl,
  eachFleet,
  startWorkers,
  type WorkerProcess,
  waitForConsumers,
} from '../../helpers/fleet.js';
import { endsOf, ledgerOf } from '../../helpers/ledger.js';

let dir: string;
let queue: string;
let workers: WorkerProcess[];
eachFleet((fleet) => ({ dir, queue, workers } = fleet), { queues: ['warren.results.strays-1'] });

const TASKS = 3;

describe('a run no worker shares the working directory of', () => {
  it('says so, runs nothing in the stray directory, and completes once a worker that shares it starts', async () => {
    const run = join(dir, 'mk2');
    const stray = join(dir, 'mk1');
    mkdirSync(run);
    mkdirSync(stray);
    writeFileSync(
      join(run, 'jobs.sh'),
      Array.from({ length: TASKS }, (_, i) => `echo ${i} > out.${i}\n`).join(''),
    );
    workers.push(...startWorkers(1, { cwd: stray, queue, args: ['--name', 'stray'] }));
    let said = '';
    // Delivery limit 1: the stray's give-backs use it up within seconds, so the tasker must
    // tell them from a task that kills its workers (it publishes the task again, not `lost`).
    const running = tasker(['run', 'jobs.sh', '--run-id', 'strays-1'], {
      cwd: run,
      env: { RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue, WARREN_DELIVERY_LIMIT: '1' },
    });
    running.stderr?.on('data', (chunk: Buffer) => {
      said += chunk.toString();
    });
    await waitFor(
      () => said.includes("no worker shares this run's working directory"),
      45_000,
      'the tasker to say no worker shares the run directory',
    );
    const warning = logLines(said).find((line) => line.msg.startsWith('no worker shares'));
    expect(warning?.level).toBe(40);
    expect(warning?.msg).toContain(`no worker shares this run's working directory ${run}:`);
    expect(warning?.msg).toContain(`(stray in ${stray})`);
    expect(warning?.msg).toContain(`worker --workdir ${run}`);
    // Nothing ran, here or there.
    expect(readdirSync(stray).filter((name) => name.startsWith('out.'))).toEqual([]);
    expect(readdirSync(run).filter((name) => name.startsWith('out.'))).toEqual([]);

    workers.push(...startWorkers(1, { cwd: run, queue }));
    await waitForConsumers(queue, 1);
    const result = await running;
    expect(result.exitCode).toBe(0);
    for (let i = 0; i < TASKS; i++) expect(existsSync(join(run, `out.${i}`))).toBe(true);
    expect(readdirSync(stray).filter((name) => name.startsWith('out.'))).toEqual([]);
    const ends = endsOf(ledgerOf(join(run, '.warren'), 'strays-1'));
    expect(ends).toHaveLength(TASKS);
    expect(ends.every((end) => end.state === 'succeeded' && /^w1-/.test(end.worker))).toBe(true);
    // The stray's give-backs ran the delivery limit out: published again, never failed `lost`.
    expect(said).toContain('after workers that cannot see the run gave it back');
    expect(said).toContain('publishing it again, as the same attempt');
  });
});
