import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CORPUS, tasker } from '../helpers/cli.js';
import {
  brokerUrl,
  declareTaskQueue,
  eachFleet,
  queueDepth,
  startWorkers,
  type WorkerProcess,
  waitForConsumers,
  withChannel,
} from '../helpers/fleet.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';

let dir: string;
let queue: string;
let workers: WorkerProcess[];
eachFleet((fleet) => ({ dir, queue, workers } = fleet));

const env = () => ({ RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue });
const state = () => join(dir, '.warren');
const write = (name: string, text: string) => writeFileSync(join(dir, name), text);
const lines = (name: string) => readFileSync(join(dir, name), 'utf8').split('\n').filter(Boolean);

describe('tasker run through RabbitMQ', () => {
  it('runs a makita file with two workers: every task once, phases in order, nothing left behind', async () => {
    copyFileSync(join(CORPUS, 'modelmatrix_example', 'jobs.sh'), join(dir, 'jobs.sh'));
    mkdirSync(join(dir, 'data'));
    for (const data of new Set(readFileSync(join(dir, 'jobs.sh'), 'utf8').match(/data\/\S+\.csv/g)))
      write(data, 'x\n');
    // Both workers listen before the run starts, so both take simulations.
    await declareTaskQueue(queue);
    workers.push(...startWorkers(2, { cwd: dir, queue }));
    await waitForConsumers(queue, 2);

    const result = await tasker(['run', 'jobs.sh', '--rules', 'makita', '--run-id', 'dist-1'], {
      cwd: dir,
      env: env(),
    });
    expect(result.stderr).not.toMatch(/"level":(40|50)/);
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain(`started run dist-1: rabbitmq mode, RabbitMQ at 127.0.0.1`);
    expect(existsSync(join(dir, 'output/tables/metrics_all.csv'))).toBe(true);

    const report = JSON.parse(
      (await tasker(['status', '--json', '--run-id', 'dist-1'], { cwd: dir })).stdout,
    );
    expect(report.state).toBe('succeeded');
    expect(report.mode).toBe('rabbitmq');
    const ends = endsOf(ledgerOf(state(), 'dist-1'));
    // The ledger and status agree, and every task ran exactly once.
    expect(ends).toHaveLength(report.tasks.length);
    expect(new Set(ends.map((end) => end.task)).size).toBe(report.tasks.length);
    for (const phase of report.phases) expect(phase.succeeded).toBe(phase.total);
    // Parallel phases ran on the workers, serial ones in the tasker.
    const byPhase = (name: string) => ends.filter((end) => end.phase === name);
    expect(new Set(byPhase('simulate').map((end) => end.worker.replace(/-\d+$/, '')))).toEqual(
      new Set(['w1', 'w2']),
    );
    expect(new Set(byPhase('prepare').map((end) => end.worker))).toEqual(new Set(['tasker-1']));
    // Phases never overlap.
    const order: string[] = report.phases.map((phase: { name: string }) => phase.name);
    for (let i = 1; i < order.length; i++) {
      const lastEnd = Math.max(
        ...byPhase(order[i - 1] as string).map((end) => Date.parse(end.finishedAt)),
      );
      const firstStart = Math.min(
        ...byPhase(order[i] as string).map((end) => Date.parse(end.startedAt)),
      );
      expect(firstStart).toBeGreaterThanOrEqual(lastEnd);
    }
    // No queue of the run is left, and the task queue is empty.
    expect(await queueDepth('warren.results.dist-1')).toBe(-1);
    expect(await queueDepth(queue)).toBe(0);
  });

  it('retries a failing command on the workers, then reports it failed and exits 1', async () => {
    write('jobs.sh', "echo ok\nsh -c 'echo no input >&2; exit 5'\n");
    workers.push(...startWorkers(1, { cwd: dir, queue }));
    const result = await tasker(
      ['run', 'jobs.sh', '--run-id', 'fail-1', '--retries', '1', '--retry-delay', '10ms'],
      {
        cwd: dir,
        env: env(),
      },
    );
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/exit 5 after 2 attempts: sh -c/);
    const failed = endsOf(ledgerOf(state(), 'fail-1')).filter((end) => end.state === 'failed');
    expect(
      failed.map((end) => [end.attempt, end.final, end.exitCode, end.errorTail, end.worker]),
    ).toEqual([
      [1, false, 5, 'no input\n', 'w1-1'],
      [2, true, 5, 'no input\n', 'w1-1'],
    ]);
  });

  it('keeps two runs on the same workers apart', async () => {
    const runs = ['mix-a', 'mix-b'];
    for (const run of runs) {
      write(
        `${run}.sh`,
        Array.from({ length: 10 }, (_, i) => `echo ${run} ${i} $WARREN_RUN_ID >> ${run}.txt`).join(
          '\n',
        ),
      );
    }
    workers.push(...startWorkers(2, { cwd: dir, queue }));
    const results = await Promise.all(
      runs.map((run) => tasker(['run', `${run}.sh`, '--run-id', run], { cwd: dir, env: env() })),
    );
    expect(results.map((result) => result.exitCode)).toEqual([0, 0]);
    for (const run of runs) {
      expect(
        lines(`${run}.txt`).every((line) => line.startsWith(`${run} `) && line.endsWith(` ${run}`)),
      ).toBe(true);
      expect(lines(`${run}.txt`)).toHaveLength(10);
      const ends = endsOf(ledgerOf(state(), run));
      expect(ends).toHaveLength(10);
      expect(ends.every((end) => end.command.startsWith(`echo ${run} `))).toBe(true);
      expect(await queueDepth(`warren.results.${run}`)).toBe(-1);
    }
  });

  it('resumes after the tasker is killed mid-phase, without running or publishing anything twice', async () => {
    write(
      'jobs.sh',
      Array.from({ length: 12 }, (_, i) => `sleep 0.3; echo ${i} $WARREN_TASK_ID >> done.txt`).join(
        '\n',
      ),
    );
    workers.push(...startWorkers(2, { cwd: dir, queue }));
    const first = tasker(['run', 'jobs.sh', '--run-id', 'kill-1'], { cwd: dir, env: env() });
    while (!existsSync(join(dir, 'done.txt')) || lines('done.txt').length < 3)
      await new Promise((r) => setTimeout(r, 50));
    first.kill('SIGKILL');
    await first;
    const second = await tasker(['run', 'jobs.sh', '--run-id', 'kill-1'], { cwd: dir, env: env() });
    expect(second.exitCode).toBe(0);
    expect(second.stderr).toContain('resuming run kill-1');
    const ran = lines('done.txt');
    expect(ran).toHaveLength(12);
    expect(new Set(ran.map((line) => line.split(' ')[1])).size).toBe(12);
    const records = ledgerOf(state(), 'kill-1');
    const queued = records.flatMap((record) => (record.type === 'queued' ? record.tasks : []));
    expect(queued).toHaveLength(12);
    expect(endsOf(records).every((end) => end.attempt === 1 && end.state === 'succeeded')).toBe(
      true,
    );
    expect(await queueDepth('warren.results.kill-1')).toBe(-1);
  });

  it('never takes a result dead-lettered from the task queue for a real one', async () => {
    write('jobs.sh', 'sleep 3; echo real >> ran.txt\n');
    await declareTaskQueue(queue);
    workers.push(...startWorkers(2, { cwd: dir, queue }));
    await waitForConsumers(queue, 2);
    const run = tasker(['run', 'jobs.sh', '--run-id', 'forge-1'], { cwd: dir, env: env() });
    let start: { task: string; phase: string } | undefined;
    while (!start) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const records = existsSync(join(state(), 'runs/forge-1/ledger.jsonl'))
        ? ledgerOf(state(), 'forge-1')
        : [];
      start = records.find((record) => record.type === 'start') as typeof start;
    }
    // A "succeeded" result put on the task queue: the idle worker refuses it, and the broker
    // dead-letters it into the run's results queue.
    const now = new Date().toISOString();
    const forged = {
      v: 1,
      run: 'forge-1',
      phase: start.phase,
      task: start.task,
      attempt: 1,
      state: 'succeeded',
      failure: null,
      reason: null,
      worker: 'mallory',
      host: 'nowhere',
      startedAt: now,
      finishedAt: now,
      exitCode: 0,
      signal: null,
      stdoutTail: '',
      stderrTail: '',
      logs: null,
    };
    await withChannel(async (channel) => {
      channel.sendToQueue(queue, Buffer.from(JSON.stringify(forged)), {
        type: 'warren.result',
        headers: { 'warren-run': 'forge-1' },
      });
    });
    const result = await run;
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toMatch(/dropped a message on .*a dead letter that is not a task/);
    // The run waited for the real attempt.
    expect(lines('ran.txt')).toEqual(['real']);
    const ends = endsOf(ledgerOf(state(), 'forge-1'));
    expect(ends.map((end) => [end.state, end.worker.replace(/-\d+$/, '')])).toEqual([
      ['succeeded', expect.stringMatching(/^w[12]$/)],
    ]);
  });

  it('counts a duplicate result that arrives while a retry waits only once', async () => {
    write('jobs.sh', "sh -c 'echo try >> tries.txt; exit 3'\n");
    workers.push(...startWorkers(1, { cwd: dir, queue }));
    const run = tasker(
      ['run', 'jobs.sh', '--run-id', 'dup-1', '--retries', '1', '--retry-delay', '1500ms'],
      { cwd: dir, env: env() },
    );
    let end: ReturnType<typeof endsOf>[number] | undefined;
    while (!end) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const path = join(state(), 'runs/dup-1/ledger.jsonl');
      end = existsSync(path) ? endsOf(ledgerOf(state(), 'dup-1'))[0] : undefined;
    }
    // The first attempt's result again, as a redelivery after a lost ack would bring it.
    const duplicate = {
      v: 1,
      run: 'dup-1',
      phase: end.phase,
      task: end.task,
      attempt: 1,
      state: 'failed',
      failure: 'exit',
      reason: 'exit 3',
      worker: end.worker,
      host: end.host,
      startedAt: end.startedAt,
      finishedAt: end.finishedAt,
      exitCode: 3,
      signal: null,
      stdoutTail: '',
      stderrTail: '',
      logs: null,
    };
    await withChannel(async (channel) => {
      channel.publish(
        'warren.results',
        'warren.results.dup-1',
        Buffer.from(JSON.stringify(duplicate)),
        {
          type: 'warren.result',
        },
      );
    });
    const result = await run;
    expect(result.exitCode).toBe(1);
    expect(lines('tries.txt')).toEqual(['try', 'try']);
    expect(
      endsOf(ledgerOf(state(), 'dup-1')).map((record) => [record.attempt, record.final]),
    ).toEqual([
      [1, false],
      [2, true],
    ]);
  });

  it('send --no-wait publishes and exits; sending the same file again collects the results', async () => {
    write('part.sh', 'echo a >> out.txt\necho b >> out.txt\n');
    const sent = await tasker(['send', 'part.sh', '--run-id', 'nw-1', '--no-wait'], {
      cwd: dir,
      env: env(),
    });
    expect(sent.exitCode).toBe(0);
    expect(sent.stderr).toMatch(/not waiting for results: they wait in `warren.results.nw-1`/);
    expect(sent.stderr).not.toMatch(/run nw-1 succeeded/);
    expect(await queueDepth(queue)).toBe(2);
    workers.push(...startWorkers(1, { cwd: dir, queue }));
    const collected = await tasker(['send', 'part.sh', '--run-id', 'nw-1'], {
      cwd: dir,
      env: env(),
    });
    expect(collected.exitCode).toBe(0);
    expect(collected.stderr).toMatch(/run nw-1 succeeded/);
    expect(lines('out.txt').sort()).toEqual(['a', 'b']);
    const records = ledgerOf(state(), 'nw-1');
    expect(
      records.flatMap((record) => (record.type === 'queued' ? record.tasks : [])),
    ).toHaveLength(2);
    expect(endsOf(records).map((end) => end.state)).toEqual(['succeeded', 'succeeded']);
    expect(await queueDepth('warren.results.nw-1')).toBe(-1);
  });

  it('a worker whose task log cannot be written fails the attempt as infra and goes on', async () => {
    // A file where the run's log directory belongs: the worker cannot open the task's log.
    mkdirSync(join(state(), 'runs', 'infra-1'), { recursive: true });
    write('.warren/runs/infra-1/logs', 'in the way\n');
    write('jobs.sh', 'echo never >> never.txt\n');
    workers.push(...startWorkers(1, { cwd: dir, queue }));
    const failed = await tasker(
      ['run', 'jobs.sh', '--run-id', 'infra-1', '--retries', '1', '--retry-delay', '10ms'],
      { cwd: dir, env: env() },
    );
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toMatch(/the worker could not run it: cannot open task log/);
    expect(
      endsOf(ledgerOf(state(), 'infra-1')).map((end) => [end.attempt, end.failure, end.final]),
    ).toEqual([
      [1, 'infra', false],
      [2, 'infra', true],
    ]);
    expect(existsSync(join(dir, 'never.txt'))).toBe(false);
    // The same worker runs the next run's task.
    const next = await tasker(['run', 'jobs.sh', '--run-id', 'infra-2'], { cwd: dir, env: env() });
    expect(next.exitCode).toBe(0);
    expect(lines('never.txt')).toEqual(['never']);
  });
});
