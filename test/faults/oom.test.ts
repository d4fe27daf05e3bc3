import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { cliEnv, processesIn, ROOT, tasker, waitFor, worker } from '../helpers/cli.js';
import { brokerUrl, eachFleet } from '../helpers/fleet.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';
import { count } from './figures.js';
import { memoryCgroup } from './memoryCgroup.js';
import { killTree } from './support.js';

let dir: string;
let queue: string;
eachFleet((fleet) => ({ dir, queue } = fleet), { leftovers: 'wait' });

const env = () => ({ RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue });

describe('faults: memory', () => {
  it('a task killed by the OOM killer is recorded as oom, not as a plain failure', async (context) => {
    const cgroup = memoryCgroup(150 * 1024 * 1024);
    if (!cgroup) {
      context.skip(
        'cannot create a memory cgroup here (needs root and a writable cgroup hierarchy)',
      );
      return;
    }
    try {
      writeFileSync(join(dir, 'jobs.sh'), 'echo fine\nhead -c 1G /dev/zero | tail > /dev/null\n');
      // The worker joins the limited cgroup before it starts, as in a container with a limit.
      const boxed = execa(
        'sh',
        [
          '-c',
          `echo $$ > ${cgroup.procs} && exec node ${join(ROOT, 'dist', 'worker', 'cli.js')} --name boxed`,
        ],
        {
          cwd: dir,
          env: cliEnv(env()),
          extendEnv: false,
          reject: false,
        },
      );
      const result = await tasker(['run', 'jobs.sh', '--run-id', 'oom-1', '--retries', '0'], {
        cwd: dir,
        env: env(),
      });
      boxed.kill('SIGTERM');
      await boxed;
      expect(result.exitCode).toBe(1);
      const failed = endsOf(ledgerOf(join(dir, '.warren'), 'oom-1')).filter(
        (end) => end.state === 'failed',
      );
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({ failure: 'oom', exitCode: 137, signal: 'SIGKILL' });
      expect(failed[0]?.reason).toMatch(/OOM killer/);
      // With no size classes configured, the failure says how a bigger worker could take it.
      expect(result.stderr).toMatch(/tasker --classes default,large/);
      count({ tasksRun: 2 });
    } finally {
      await waitFor(() => processesIn(dir).length === 0, 10_000, 'the boxed worker gone');
      cgroup.remove();
    }
  });

  it('a worker whose container died with its task reports the attempt lost when it starts again', async () => {
    writeFileSync(join(dir, 'jobs.sh'), 'sleep 5; echo done >> done.txt\n');
    const markers = join(dir, 'inflight');
    const args = ['--name', 'pod-1', '--inflight-dir', markers];
    const first = worker(args, { cwd: dir, env: env() });
    const run = tasker(['run', 'jobs.sh', '--run-id', 'died-1'], { cwd: dir, env: env() });
    await waitFor(
      () => existsSync(markers) && readdirSync(markers).length === 1,
      30_000,
      'the in-flight marker',
    );
    killTree(first.pid as number); // the container dies, its task with it
    await first;
    const again = worker(args, { cwd: dir, env: env() });
    const result = await run;
    expect(result.exitCode).toBe(1);
    const [end] = endsOf(ledgerOf(join(dir, '.warren'), 'died-1'));
    expect(end).toMatchObject({ state: 'failed', failure: 'lost', worker: 'pod-1-1', final: true });
    expect(end?.reason).toMatch(/container died while running it/);
    expect(readdirSync(markers)).toEqual([]);
    again.kill('SIGTERM');
    await again;
    // The broker handed the task out again; the restarted worker did not run it a second time.
    expect(existsSync(join(dir, 'done.txt'))).toBe(false);
    count({ tasksRun: 1, workersKilled: 1, tasksLost: 0 });
  });
});
