import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tasker } from '../../helpers/cli.js';
import {
  brokerUrl,
  declareTaskQueue,
  eachFleet,
  startWorkers,
  type WorkerProcess,
  waitForConsumers,
} from '../../helpers/fleet.js';

let dir: string;
let queue: string;
let workers: WorkerProcess[];
eachFleet((fleet) => ({ dir, queue, workers } = fleet));

/** The one path between backquotes in a message. */
const quoted = (line: string) => [...line.matchAll(/`([^`]+)`/g)].map((match) => match[1] ?? '');

describe('tasker logs', () => {
  it('says the task wrote nothing, naming its log files, when it wrote nothing', async () => {
    writeFileSync(join(dir, 'jobs.sh'), 'true\necho said\n');
    expect((await tasker(['run', 'jobs.sh', '--run-id', 'lg-1'], { cwd: dir })).exitCode).toBe(0);
    const silent = await tasker(['logs', 'true'], { cwd: dir });
    expect(silent.exitCode).toBe(0);
    expect(silent.stdout).toBe('');
    expect(silent.stderr).toMatch(
      /^tasker: task [0-9a-f]{16} wrote no output \(to `.+` or `.+`\)$/,
    );
    const files = quoted(silent.stderr);
    expect(files).toHaveLength(2);
    for (const file of files) expect(existsSync(join(dir, file)), file).toBe(true);
    // A task that said something is unchanged: its output, nothing else.
    const said = await tasker(['logs', 'echo said'], { cwd: dir });
    expect([said.exitCode, said.stdout, said.stderr]).toEqual([0, 'said', '']);
  });

  it('says the log is not here, naming the file, when it was removed', async () => {
    mkdirSync(join(dir, 'study'));
    writeFileSync(join(dir, 'study', 'jobs.sh'), 'echo from the worker\n');
    await declareTaskQueue(queue);
    workers.push(...startWorkers(1, { cwd: join(dir, 'study'), queue }));
    await waitForConsumers(queue, 1);
    const env = { RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue };
    const run = await tasker(['run', 'jobs.sh', '--run-id', 'lg-2'], {
      cwd: join(dir, 'study'),
      env,
    });
    expect(run.exitCode).toBe(0);
    const log = join(dir, 'study', '.warren', 'runs', 'lg-2', 'logs', 'w1-1.out');
    expect(existsSync(log)).toBe(true);
    rmSync(log);
    const shown = await tasker(['logs', 'echo from'], { cwd: join(dir, 'study') });
    expect(shown.exitCode).toBe(2);
    expect(shown.stdout).toBe('');
    const lines = shown.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /task [0-9a-f]{16}'s log is not in this state dir: no `\.warren\/runs\/lg-2\/logs\/w1-1\.out` \(it ran on w1-1: the file was removed, or that worker keeps its logs in another state dir\)$/,
    );
  });
});
