import { readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { logLines, tasker, worker } from '../helpers/cli.js';
import {
  brokerUrl,
  declareTaskQueue,
  eachFleet,
  startWorkers,
  stopWorkers,
  type WorkerProcess,
  waitForConsumers,
} from '../helpers/fleet.js';

let dir: string;
let queue: string;
let workers: WorkerProcess[];
eachFleet((fleet) => ({ dir, queue, workers } = fleet));

const env = () => ({ RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue });

describe('worker names', () => {
  it('refuses a second worker that claims a name in use, with one line and exit 2', async () => {
    await declareTaskQueue(queue);
    workers.push(...startWorkers(1, { cwd: dir, queue, args: ['--name', 'same'] }));
    await waitForConsumers(queue, 1);
    const second = await worker(['--queue', queue, '--name', 'same'], {
      cwd: dir,
      env: { ...env(), WARREN_LOG_LEVEL: 'silent' },
    });
    expect(second.exitCode).toBe(2);
    expect(second.stderr).toBe(
      `worker: worker name \`same\` is in use by another worker of \`${queue}\`; give each worker its own --name (or leave it out)`,
    );
    // The first goes on taking tasks.
    writeFileSync(join(dir, 'one.sh'), 'true\n');
    const sent = await tasker(['run', 'one.sh', '--run-id', 'names-1'], { cwd: dir, env: env() });
    expect(sent.exitCode, sent.stderr).toBe(0);
    // Once it is gone, the name is free again.
    await stopWorkers(workers.splice(0));
    workers.push(...startWorkers(1, { cwd: dir, queue, args: ['--name', 'same'] }));
    await waitForConsumers(queue, 1);
  });

  it('gives two workers on one host different default names, each in its log lines and slot logs', async () => {
    await declareTaskQueue(queue);
    const started = [1, 2].map(() => worker(['--queue', queue], { cwd: dir, env: env() }));
    workers.push(...started);
    await waitForConsumers(queue, 2);
    writeFileSync(join(dir, 'jobs.sh'), 'sleep 0.5\nsleep 0.5\nsleep 0.5\nsleep 0.5\n');
    const sent = await tasker(['run', 'jobs.sh', '--run-id', 'names-2'], { cwd: dir, env: env() });
    expect(sent.exitCode, sent.stderr).toBe(0);
    await stopWorkers(workers.splice(0));
    const names = await Promise.all(
      started.map(async (process) => {
        const lines = logLines((await process).stderr);
        const name = String(lines[0]?.worker);
        // Every line says which worker (or which of its slots) it is from.
        for (const line of lines) expect(String(line.worker)).toMatch(new RegExp(`^${name}(-1)?$`));
        return name;
      }),
    );
    const host = hostname().split('.')[0];
    for (const name of names) expect(name).toMatch(new RegExp(`^${host}-\\d+-[0-9a-f]{4}$`));
    expect(names[0]).not.toBe(names[1]);
    // Slot logs are named after the worker: one set each, none shared.
    const logs = readdirSync(join(dir, '.warren', 'runs', 'names-2', 'logs')).sort();
    expect(logs).toEqual(names.flatMap((name) => [`${name}-1.err`, `${name}-1.out`]).sort());
  });
});
