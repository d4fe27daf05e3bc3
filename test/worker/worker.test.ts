import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../shared/protocol.js';
import { taskId } from '../../shared/taskId.js';
import { freePort } from '../helpers/broker.js';
import { logLines, tasker, worker } from '../helpers/cli.js';
import {
  brokerUrl,
  eachFleet,
  queueDepth,
  startWorkers,
  stopWorkers,
  testQueue,
  type WorkerProcess,
  withChannel,
} from '../helpers/fleet.js';

let dir: string;
let queue: string;
let workers: WorkerProcess[];
eachFleet((fleet) => ({ dir, queue, workers } = fleet), { queues: ['warren.results.w-run'] });

const env = () => ({ RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue });

describe('worker', () => {
  it('dead-letters messages it cannot read and keeps working', async () => {
    writeFileSync(join(dir, 'noop.sh'), 'true\n');
    workers.push(...startWorkers(1, { cwd: dir, queue }));
    // A tasker declares the queue; its one task also proves the worker is up.
    expect(
      (await tasker(['send', 'noop.sh', '--run-id', 'w-first'], { cwd: dir, env: env() })).exitCode,
    ).toBe(0);
    const task = {
      v: PROTOCOL_VERSION,
      run: 'w-run',
      phase: 'p',
      task: taskId('w-run', 'p', 'echo good > good.txt'),
      attempt: 1,
      command: 'echo good > good.txt',
      timeoutMs: 0,
    };
    const deadBefore = await withChannel(
      async (channel) => (await channel.checkQueue('warren.dead')).messageCount,
    );
    await withChannel(async (channel) => {
      await channel.assertQueue('warren.results.w-run', {
        durable: true,
        arguments: { 'x-queue-type': 'quorum' },
      });
      await channel.bindQueue('warren.results.w-run', 'warren.results', 'warren.results.w-run');
      const bad: [Buffer, Record<string, unknown>][] = [
        [Buffer.from('not json at all'), {}],
        [Buffer.from(JSON.stringify({ hello: 'world' })), {}],
        [Buffer.from(JSON.stringify({ ...task, v: 99 })), { replyTo: 'warren.results.w-run' }],
        [Buffer.from(JSON.stringify(task)), { replyTo: 'some.other.queue' }],
      ];
      for (const [content, options] of bad) channel.sendToQueue(queue, content, options);
      channel.sendToQueue(queue, Buffer.from(JSON.stringify(task)), {
        replyTo: 'warren.results.w-run',
        persistent: true,
      });
      // The good task after the bad ones runs, and its result reaches the run's queue.
      let result: false | { content: Buffer } = false;
      for (let i = 0; i < 100 && !result; i++) {
        result = await channel.get('warren.results.w-run', { noAck: true });
        if (!result) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(result && JSON.parse(result.content.toString())).toMatchObject({
        task: task.task,
        state: 'succeeded',
      });
    });
    expect(readFileSync(join(dir, 'good.txt'), 'utf8')).toBe('good\n');
    const deadAfter = await withChannel(
      async (channel) => (await channel.checkQueue('warren.dead')).messageCount,
    );
    expect(deadAfter - deadBefore).toBe(4);
    await stopWorkers(workers);
    const log = logLines((await workers[0])?.stderr ?? '');
    const refused = log
      .filter((line) => line.msg.startsWith(`refused a message on \`${queue}\``))
      .map((line) => line.msg);
    expect(refused).toHaveLength(4);
    expect(refused[0]).toMatch(/task body is not JSON/);
    expect(refused[2]).toMatch(/protocol version 99, this Warren speaks 1/);
    expect(refused[3]).toMatch(/reply-to "some.other.queue"/);
  });

  it('exits 0 when the queue stays empty for --exit-when-idle', async () => {
    writeFileSync(join(dir, 'jobs.sh'), 'echo a > a.txt\necho b > b.txt\n');
    const drainer = worker(['--queue', queue, '--exit-when-idle', '1s'], { cwd: dir, env: env() });
    const sent = await tasker(['send', 'jobs.sh', '--run-id', 'idle-1'], { cwd: dir, env: env() });
    expect(sent.exitCode).toBe(0);
    const result = await drainer;
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain('queue empty and idle for 1.0s: exiting');
    expect(existsSync(join(dir, 'a.txt')) && existsSync(join(dir, 'b.txt'))).toBe(true);
  });

  it('on SIGTERM lets the running task finish within --grace and exits 0', async () => {
    writeFileSync(join(dir, 'jobs.sh'), 'sleep 1; echo done > slow.txt\n');
    workers.push(...startWorkers(1, { cwd: dir, queue, args: ['--grace', '10s'] }));
    const [one] = workers;
    const run = tasker(['send', 'jobs.sh', '--run-id', 'term-1'], { cwd: dir, env: env() });
    while (!existsSync(join(dir, '.warren', 'runs', 'term-1', 'logs', 'w1-1.out')))
      await new Promise((r) => setTimeout(r, 50));
    one?.kill('SIGTERM');
    expect((await one)?.exitCode).toBe(0);
    expect((await run).exitCode).toBe(0);
    expect(readFileSync(join(dir, 'slow.txt'), 'utf8')).toBe('done\n');
    // It was acknowledged on its way out: nothing is left to run twice.
    expect(await queueDepth(queue)).toBe(0);
  });

  it('fails to start with one line and exit 3 when the broker is unreachable or refuses it', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [
        { RABBITMQ_URL: 'amqp://guest:guest@127.0.0.1:1', WARREN_CONNECT_TIMEOUT: '1s' },
        /^worker: cannot reach the broker at 127\.0\.0\.1:1: connection refused$/,
      ],
      [
        { RABBITMQ_URL: brokerUrl().replace('guest:guest', 'guest:wrong') },
        /^worker: the broker at 127\.0\.0\.1:\d+ refused the credentials of user `guest`$/,
      ],
      [
        { RABBITMQ_URL: `${brokerUrl()}/no-such-vhost` },
        /^worker: the broker at .* refused vhost `no-such-vhost` to user `guest`/,
      ],
    ];
    for (const [extra, message] of cases) {
      const result = await worker(['--queue', queue], {
        cwd: dir,
        env: { ...extra, WARREN_LOG_LEVEL: 'silent' },
      });
      expect(result.exitCode).toBe(3);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).not.toContain('wrong');
    }
    // Not in silence: each retry as it is scheduled (and, on a terminal, a connecting line first).
    for (const cli of [worker, tasker]) {
      writeFileSync(join(dir, 'noop.sh'), 'true\n');
      const said = await cli(cli === worker ? ['--queue', queue] : ['run', 'noop.sh'], {
        cwd: dir,
        env: { RABBITMQ_URL: 'amqp://guest:guest@127.0.0.1:1', WARREN_CONNECT_TIMEOUT: '2s' },
      });
      expect(said.exitCode).toBe(3);
      const messages = logLines(said.stderr).map((line) => line.msg);
      expect(messages[0]).toMatch(/^cannot reach the broker at 127\.0\.0\.1:1/);
      const retries = messages.filter((msg) => msg.startsWith('cannot reach'));
      expect(retries.length).toBeGreaterThanOrEqual(3);
      for (const retry of retries) {
        expect(retry).toMatch(
          /^cannot reach the broker at 127\.0\.0\.1:1 \(connection refused\); retrying in \d+(\.\d)?m?s, giving up after 2s$/,
        );
      }
      expect(said.stderr.trim().split('\n').at(-1)).toMatch(
        /^(worker|tasker): cannot reach the broker at 127\.0\.0\.1:1: connection refused$/,
      );
    }
    // The tasker too; and bad input is reported before any connection is tried.
    writeFileSync(join(dir, 'noop.sh'), 'true\n');
    const unreachable = {
      RABBITMQ_URL: 'amqp://guest:guest@127.0.0.1:1',
      WARREN_CONNECT_TIMEOUT: '1s',
      WARREN_LOG_LEVEL: 'silent',
    };
    const tasked = await tasker(['run', 'noop.sh'], { cwd: dir, env: unreachable });
    expect(tasked.exitCode).toBe(3);
    expect(tasked.stderr).toBe(
      'tasker: cannot reach the broker at 127.0.0.1:1: connection refused',
    );
    const missing = await tasker(['run', 'missing.sh'], { cwd: dir, env: unreachable });
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toBe('tasker: cannot read jobs file `missing.sh`: no such file');
    expect(existsSync(join(dir, '.warren', 'runs'))).toBe(false);
  });

  it('answers liveness and readiness probes on --health-port', async () => {
    const port = await freePort();
    writeFileSync(join(dir, 'one.sh'), 'true\n');
    const get = (path: string) =>
      fetch(`http://127.0.0.1:${port}${path}`).then(
        (response) => response.status,
        () => 0,
      );
    const readySoon = async () => {
      for (let i = 0; i < 100 && (await get('/readyz')) !== 200; i++)
        await new Promise((r) => setTimeout(r, 100));
      return get('/readyz');
    };
    // Started before any tasker: ready (connected, waiting for the queue to be declared).
    workers.push(...startWorkers(1, { cwd: dir, queue, args: ['--health-port', String(port)] }));
    expect(await readySoon()).toBe(200);
    expect(await get('/livez')).toBe(200);
    expect(await get('/other')).toBe(404);
    // Then it takes the tasks a tasker sends.
    const sent = await tasker(['send', 'one.sh', '--run-id', 'probe-1'], { cwd: dir, env: env() });
    expect(sent.exitCode, sent.stderr).toBe(0);
    expect(await get('/readyz')).toBe(200);
  });

  it('stops at once on SIGTERM while still waiting for the task queue to exist', async () => {
    workers.push(...startWorkers(1, { cwd: dir, queue: testQueue() }));
    const [waiting] = workers;
    await new Promise((r) => setTimeout(r, 1500));
    waiting?.kill('SIGTERM');
    const exit = await waiting;
    expect(exit?.exitCode, exit?.stderr).toBe(0);
  });

  it('serves Prometheus metrics on --metrics-port: tasks by outcome and class, durations, slots', async () => {
    const port = await freePort();
    writeFileSync(join(dir, 'jobs.sh'), "true\ntrue\nsh -c 'exit 7'\n");
    workers.push(
      ...startWorkers(1, {
        cwd: dir,
        queue,
        args: ['--metrics-port', String(port), '--concurrency', '2'],
      }),
    );
    const result = await tasker(['run', 'jobs.sh', '--run-id', 'metrics-1', '--retries', '0'], {
      cwd: dir,
      env: env(),
    });
    expect(result.exitCode).toBe(1);
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    // The value of the series with this name and these labels (in any order).
    const value = (name: string, labels: Record<string, string> = {}) => {
      const line = text.split('\n').find((candidate) => {
        if (!candidate.startsWith(`${name}{`)) return false;
        return Object.entries(labels).every(([key, v]) => candidate.includes(`${key}="${v}"`));
      });
      return Number(line?.split(' ').at(-1));
    };
    expect(value('warren_tasks_total', { outcome: 'succeeded', class: '', worker: 'w1' })).toBe(2);
    expect(value('warren_tasks_total', { outcome: 'failed', class: 'exit' })).toBe(1);
    expect(value('warren_task_duration_seconds_count', { outcome: 'succeeded' })).toBe(2);
    expect(value('warren_slots')).toBe(2);
    expect(value('warren_slots_busy')).toBe(0);
    expect(text).toContain('warren_worker_process_resident_memory_bytes');
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(404);
  });
});
