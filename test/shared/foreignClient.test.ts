import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, execaSync, type ResultPromise } from 'execa';
import { describe, expect, it } from 'vitest';
import { signature } from '../../shared/signing.js';
import { FIXTURES, logLines, ROOT, tasker } from '../helpers/cli.js';
import {
  brokerUrl,
  declareTaskQueue,
  eachFleet,
  queueDepth,
  startWorkers,
  stopWorkers,
  waitForConsumers,
} from '../helpers/fleet.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';

/**
 * The contract as a foreign client sees it: a Python (pika) worker and publisher written from
 * docs/protocol.md and docs/security.md alone (test/fixtures/python/), against the real tasker
 * and the real workers, with signed tasks and without.
 */

const SCRIPTS = join(FIXTURES, 'python');
const KEY = 'conformance-key-0123456789abcdef';

/** A python3 that has pika: Debian's python3-pika serves /usr/bin/python3, not a pyenv one. */
const PYTHON = ['/usr/bin/python3', 'python3'].find(
  (python) => execaSync(python, ['-c', 'import pika'], { reject: false }).exitCode === 0,
);
if (!PYTHON)
  process.stderr.write(
    'skipping the foreign-client tests: no python3 with pika (apt-get install python3-pika)\n',
  );

let dir: string;
let queue: string;
let workers: ReturnType<typeof startWorkers>;
const pythons: ResultPromise<{ reject: false }>[] = [];
eachFleet(
  (fleet) => {
    ({ dir, queue, workers } = fleet);
  },
  {
    stop: async () => {
      for (const python of pythons) python.kill('SIGTERM');
      await Promise.all(pythons.splice(0));
    },
  },
);

/** Starts the Python worker on the test's queue; resolves once it consumes. */
async function pythonWorker(args: string[], env: Record<string, string> = {}) {
  await declareTaskQueue(queue);
  const child = execa(
    PYTHON as string,
    [join(SCRIPTS, 'pika_worker.py'), '--queue', queue, '--name', 'py', ...args],
    { cwd: dir, env: { RABBITMQ_URL: brokerUrl(), ...env }, reject: false },
  );
  pythons.push(child);
  await waitForConsumers(queue, 1);
  // Wrapped: a process is a promise, which `await` would wait for.
  return { child };
}

interface Published {
  readonly task: string;
  readonly command: string;
  readonly result?: Record<string, unknown>;
  readonly deadLettered?: string;
}

/** Publishes tasks with the Python publisher and returns what it read back, by command. */
async function pythonPublish(
  run: string,
  tasks: { command: string; key?: string }[],
): Promise<Map<string, Published>> {
  const done = await execa(
    PYTHON as string,
    [join(SCRIPTS, 'pika_publisher.py'), '--queue', queue, '--run', run, '--wait', '30'],
    {
      cwd: dir,
      env: { RABBITMQ_URL: brokerUrl() },
      input: JSON.stringify(tasks),
      reject: false,
    },
  );
  expect(done.stderr).toBe('');
  expect(done.exitCode).toBe(0);
  const lines = done.stdout.split('\n').filter(Boolean);
  const read = lines.map((line) => JSON.parse(line) as Published);
  return new Map(read.map((published) => [published.command, published]));
}

const FLIP = 'test -e flip || { touch flip; exit 137; }';
const SPAWNS = 'echo "echo spawned > spawned.txt" >> "$WARREN_SPAWN"';

describe.skipIf(!PYTHON)('a foreign client written from the docs', () => {
  it("signs the docs' worked example as the code and the doc do", async () => {
    const doc = readFileSync(join(ROOT, 'docs', 'security.md'), 'utf8');
    const python = await execa(PYTHON as string, [
      join(SCRIPTS, 'pika_publisher.py'),
      '--example-signature',
    ]);
    const body =
      '{"v":1,"run":"py-1","phase":"adhoc","task":"d4d4829c3115e134","attempt":1,"command":"echo hello","timeoutMs":0}';
    const node = signature(
      'warren-example-key-0123456789',
      { messageId: 'd4d4829c3115e134', correlationId: 'py-1', replyTo: 'warren.results.py-1' },
      Buffer.from(body),
    );
    expect(python.stdout).toBe(node);
    expect(doc).toContain(body);
    expect(doc).toContain(node);
  });

  it.each([
    { how: 'unsigned, sparse results (every defaulted field left out)', key: '', sparse: true },
    { how: 'signed, every field (null where it does not apply)', key: KEY, sparse: false },
  ])('the tasker runs a jobs file on the Python worker: $how', async ({ key, sparse }) => {
    const run = sparse ? 'py-sparse' : 'py-signed';
    writeFileSync(join(dir, 'jobs.sh'), `echo one > one.txt\n${FLIP}\n${SPAWNS}\n`);
    await pythonWorker(sparse ? ['--sparse'] : [], { WARREN_SIGNING_KEY: key });
    const result = await tasker(['run', 'jobs.sh', '--run-id', run, '--retry-delay', '100ms'], {
      cwd: dir,
      env: { RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue, WARREN_SIGNING_KEY: key },
    });
    // Nothing the Python worker sent was dropped or unreadable.
    expect(result.stderr).not.toMatch(/dropped a|could not be read/);
    expect(result.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'one.txt'), 'utf8')).toBe('one\n');
    // The task it spawned ran too.
    expect(existsSync(join(dir, 'spawned.txt'))).toBe(true);

    const ends = endsOf(ledgerOf(join(dir, '.warren'), run));
    expect(ends.every((end) => end.worker === 'py-1')).toBe(true);
    // `exit 137`, classed as the doc maps it: signal 9, retried, then succeeded.
    const flips = ends.filter((end) => end.command === FLIP);
    expect(
      flips.map((end) => [end.attempt, end.state, end.failure, end.exitCode, end.reason]),
    ).toEqual([
      [1, 'failed', 'signal', 137, 'killed by SIGKILL (exit 137)'],
      [2, 'succeeded', null, sparse ? null : 0, null],
    ]);
    const status = JSON.parse(
      (await tasker(['status', '--json', '--run-id', run], { cwd: dir })).stdout,
    );
    expect(status.state).toBe('succeeded');
    expect(status.tasks).toHaveLength(4);
    expect(status.phases[0]).toMatchObject({ total: 4, succeeded: 4, failed: 0, retried: 1 });
    expect(status.tasks.find((task: { command: string }) => task.command === FLIP).attempts).toBe(
      2,
    );
    expect(await queueDepth(`warren.results.${run}`)).toBe(-1);
  });

  it('the Python worker with the key refuses a task signed with another: recorded rejected', async () => {
    writeFileSync(join(dir, 'jobs.sh'), 'touch forged.txt\n');
    const { child: python } = await pythonWorker([], { WARREN_SIGNING_KEY: KEY });
    const result = await tasker(['run', 'jobs.sh', '--run-id', 'py-forged'], {
      cwd: dir,
      env: {
        RABBITMQ_URL: brokerUrl(),
        WARREN_QUEUE: queue,
        WARREN_SIGNING_KEY: `${KEY}-other`,
      },
    });
    expect(result.exitCode).toBe(1);
    expect(existsSync(join(dir, 'forged.txt'))).toBe(false);
    expect(endsOf(ledgerOf(join(dir, '.warren'), 'py-forged'))).toMatchObject([
      { failure: 'rejected', final: true },
    ]);
    python.kill('SIGTERM');
    expect((await python).stderr).toMatch(/refused [0-9a-f]{16}: signature does not match/);
  });

  it('Warren workers run what the Python publisher sends, and it reads the results', async () => {
    // As a tasker would have it; the publisher declares the same again, as the doc says.
    await declareTaskQueue(queue);
    workers.push(...startWorkers(1, { cwd: dir, queue, args: ['--concurrency', '2'] }));
    await waitForConsumers(queue, 1);
    const read = await pythonPublish('py-pub', [
      { command: 'echo hi' },
      { command: 'exit 3' },
      { command: "sh -c 'kill -9 $$'" },
      { command: SPAWNS },
    ]);
    expect(read.get('echo hi')?.result).toMatchObject({
      state: 'succeeded',
      failure: null,
      exitCode: 0,
      stdoutTail: 'hi\n',
      worker: expect.stringMatching(/^w1-[12]$/),
    });
    expect(read.get('exit 3')?.result).toMatchObject({
      state: 'failed',
      failure: 'exit',
      reason: 'exit 3',
      exitCode: 3,
      signal: null,
    });
    expect(read.get("sh -c 'kill -9 $$'")?.result).toMatchObject({
      state: 'failed',
      failure: 'signal',
      exitCode: 137,
      signal: 'SIGKILL',
    });
    // A spawning task's result carries its commands; the publisher may run them or not.
    expect(read.get(SPAWNS)?.result).toMatchObject({
      state: 'succeeded',
      spawned: ['echo spawned > spawned.txt'],
    });
    expect(await queueDepth('warren.results.py-pub')).toBe(-1);
  });

  it('signing workers run its signed tasks and refuse the wrongly signed and the unsigned', async () => {
    await declareTaskQueue(queue);
    workers.push(...startWorkers(1, { cwd: dir, queue, env: { WARREN_SIGNING_KEY: KEY } }));
    await waitForConsumers(queue, 1);
    const read = await pythonPublish('py-sig', [
      { command: 'echo signed > signed.txt', key: KEY },
      { command: 'touch wrong.txt', key: `${KEY}-other` },
      { command: 'touch unsigned.txt' },
    ]);
    expect(read.get('echo signed > signed.txt')?.result).toMatchObject({ state: 'succeeded' });
    expect(readFileSync(join(dir, 'signed.txt'), 'utf8')).toBe('signed\n');
    // Refused: rejected by the worker, dead-lettered, and back in the run's results queue.
    expect(read.get('touch wrong.txt')?.deadLettered).toBe('rejected');
    expect(read.get('touch unsigned.txt')?.deadLettered).toBe('rejected');
    expect(existsSync(join(dir, 'wrong.txt'))).toBe(false);
    expect(existsSync(join(dir, 'unsigned.txt'))).toBe(false);
    await stopWorkers(workers);
    const log = logLines((await workers[0])?.stderr ?? '').map((line) => line.msg);
    expect(log.some((msg) => /refused: its signature does not match/.test(msg))).toBe(true);
    expect(log.some((msg) => /refused: it is not signed/.test(msg))).toBe(true);
  });
});
