import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, type Logger } from '../../../shared/logger.js';
import { PROTOCOL_VERSION, type TaskMessage, type TaskResult } from '../../../shared/protocol.js';
import { statePaths } from '../../../shared/statePaths.js';
import { taskId } from '../../../shared/taskId.js';
import { resultsQueue } from '../../../shared/topology.js';
import { Dispatcher } from '../../../tasker/dispatch/dispatcher.js';
import type { PhaseSummary } from '../../../tasker/dispatch/phaseTally.js';
import { spoolLine } from '../../../tasker/jobs/spool.js';
import { openSession } from '../../../tasker/ledger/session.js';
import { openTransport, type TransportSettings } from '../../../tasker/transports/openTransport.js';
import type { Transport, TransportListener } from '../../../tasker/transports/transport.js';
import { processesIn, tempDir, waitFor } from '../../helpers/cli.js';
import {
  brokerUrl,
  declareTaskQueue,
  deleteQueues,
  startWorkers,
  stopWorkers,
  testQueue,
  type WorkerProcess,
  waitForConsumers,
} from '../../helpers/fleet.js';
import { endsOf, ledgerOf } from '../../helpers/ledger.js';

/**
 * One suite, every transport (as bullmq runs one suite against each of its backends): a
 * transport is done when this passes. Each backend gives a test the settings its commands
 * would use, in a directory of its own; RabbitMQ runs the tasks on real worker processes,
 * on a task queue of the test's own.
 */
interface Backend {
  readonly name: string;
  /** Sets up for one test; tasks run in `dir`. */
  start(dir: string): Promise<TransportSettings>;
  /** Stops what `start` started, and deletes what it declared. */
  stop(runs: readonly string[]): Promise<void>;
}

const base = (dir: string) => ({
  local: false,
  queue: 'unused',
  deliveryLimit: 4,
  publishWindow: 100,
  batchSize: 64,
  signingKey: undefined,
  slots: 2,
  workdir: dir,
  stateDir: join(dir, '.warren'),
  killGraceMs: 1000,
  taskEnv: { PATH: process.env.PATH },
  s3: undefined,
});

const local: Backend = {
  name: 'local pool',
  start: async (dir) => ({ ...base(dir), broker: undefined }),
  stop: async () => {},
};

function rabbitmq(): Backend {
  let queue = '';
  let workers: WorkerProcess[] = [];
  return {
    name: 'RabbitMQ',
    start: async (dir) => {
      queue = testQueue();
      await declareTaskQueue(queue);
      // A short grace: the cancel test leaves tasks running on the workers.
      workers = startWorkers(2, { cwd: dir, queue, args: ['--grace', '1s'] });
      await waitForConsumers(queue, 2);
      return {
        ...base(dir),
        queue,
        broker: {
          url: brokerUrl(),
          heartbeatSeconds: 30,
          connectTimeoutMs: 5000,
          reconnectTimeoutMs: 5000,
          name: 'conformance',
        },
      };
    },
    stop: async (runs) => {
      await stopWorkers(workers);
      await deleteQueues(queue, ...runs.map(resultsQueue));
    },
  };
}

const log: Logger = await createLogger({ level: 'silent', format: 'json' });

let counter = 0;
/** A run id of the test's own: results queues are named after it. */
const newRun = () => `conf-${Date.now().toString(36)}-${++counter}`;

function message(run: string, command: string, attempt = 1): TaskMessage {
  return {
    v: PROTOCOL_VERSION,
    run,
    phase: 'p1',
    task: taskId(run, 'p1', command),
    attempt,
    command,
    timeoutMs: 0,
  };
}

/** A listener that keeps what it hears. */
function recorder(): TransportListener & { results: TaskResult[]; failures: unknown[] } {
  const results: TaskResult[] = [];
  const failures: unknown[] = [];
  return {
    results,
    failures,
    queued: () => {},
    started: () => {},
    result: (result) => {
      results.push(result);
    },
    fatal: (error) => {
      failures.push(error);
    },
  };
}

/**
 * Runs `commands` as one parallel phase of run `run` through the Dispatcher, as `tasker run`
 * does (a session, its ledger, a phase file); `during` gets the dispatcher once it started.
 * (The one place this suite builds a Dispatcher: adapt it here when its API changes.)
 */
async function runPhase(
  settings: TransportSettings,
  run: string,
  commands: readonly string[],
  options: {
    retries?: number;
    during?: (dispatcher: Dispatcher) => void;
    /** Runs once the phase returned, before the transport finishes and closes. */
    after?: (transport: Transport) => Promise<void>;
  } = {},
): Promise<PhaseSummary> {
  const { transport } = await openTransport(settings, { run, log, name: `conformance ${run}` });
  const { session, plans } = await openSession({
    stateDir: settings.stateDir,
    runId: run,
    mode: transport.mode,
    command: 'conformance',
    log,
    plan: async () => {
      const spool = statePaths.spool(settings.stateDir, run, 'p1');
      mkdirSync(dirname(spool), { recursive: true });
      writeFileSync(
        spool,
        commands.map((command) => spoolLine(taskId(run, 'p1', command), command)).join(''),
      );
      return [{ name: 'p1', kind: 'parallel' as const, total: commands.length, spool }];
    },
  });
  const dispatcher = new Dispatcher(
    session.ledger,
    session.memory,
    {
      run,
      retries: options.retries ?? 0,
      retryDelayMs: 10,
      timeoutMs: 0,
      keepGoing: false,
    },
    log,
  );
  let summary: PhaseSummary | undefined;
  try {
    options.during?.(dispatcher);
    summary = await dispatcher.runPhase(plans[0] as (typeof plans)[0], transport);
    await options.after?.(transport);
    await transport.finish(summary.interrupted ? 'interrupted' : 'finished');
  } finally {
    await transport.close();
    await session.close(summary && !summary.interrupted ? 0 : 130);
  }
  return summary;
}

describe.each([local, rabbitmq()])('the $name transport', (backend) => {
  let dir: string;
  let cleanup: () => void;
  let settings: TransportSettings;
  const runs: string[] = [];

  beforeEach(async () => {
    ({ dir, cleanup } = tempDir());
    settings = await backend.start(dir);
  });

  afterEach(async () => {
    await backend.stop(runs.splice(0));
    await waitFor(() => processesIn(dir).length === 0, 10_000, 'no process left');
    cleanup();
  });

  it('submit: every task runs and its result reaches the listener, succeeded', async () => {
    const run = newRun();
    runs.push(run);
    const { transport } = await openTransport(settings, { run, log, name: `conformance ${run}` });
    const listener = recorder();
    try {
      transport.listen(listener);
      const tasks = Array.from({ length: 6 }, (_, i) => message(run, `echo ${i} > out-${i}`));
      for (const task of tasks) await transport.submit(task);
      await waitFor(() => listener.results.length >= tasks.length, 20_000, 'six results');
      expect(listener.failures).toEqual([]);
      expect(listener.results.map((result) => result.task).sort()).toEqual(
        tasks.map((task) => task.task).sort(),
      );
      expect(listener.results.every((result) => result.state === 'succeeded')).toBe(true);
      for (let i = 0; i < 6; i++)
        expect(readFileSync(join(dir, `out-${i}`), 'utf8')).toBe(`${i}\n`);
      await transport.finish('finished');
      // Everything was read: nothing waits, and a finished run keeps nothing.
      expect(await transport.waiting()).toBe(0);
    } finally {
      await transport.close();
    }
  });

  it("result: a failing task's result says failed, with its class and exit code", async () => {
    const run = newRun();
    runs.push(run);
    const { transport } = await openTransport(settings, { run, log, name: `conformance ${run}` });
    const listener = recorder();
    try {
      transport.listen(listener);
      await transport.submit(message(run, 'echo oops >&2; exit 3'));
      await waitFor(() => listener.results.length >= 1, 20_000, 'a result');
      const [result] = listener.results;
      expect(result).toMatchObject({
        run,
        attempt: 1,
        state: 'failed',
        failure: 'exit',
        exitCode: 3,
        reason: 'exit 3',
      });
      expect(result?.stderrTail).toContain('oops');
    } finally {
      await transport.close();
    }
  });

  it('retry: a task that fails once, then succeeds, ends succeeded after 2 attempts', async () => {
    const run = newRun();
    runs.push(run);
    const flaky = 'if [ -e tried ]; then echo ok; else touch tried; exit 1; fi';
    const summary = await runPhase(settings, run, [flaky, 'true'], { retries: 1 });
    expect(summary).toMatchObject({ total: 2, succeeded: 2, failed: 0, interrupted: false });
    const ends = ledgerEnds(run);
    expect(
      ends.filter((end) => end.command === flaky).map((end) => [end.attempt, end.state]),
    ).toEqual([
      [1, 'failed'],
      [2, 'succeeded'],
    ]);
  });

  it('cancel: after an interrupt nothing more is taken, and the phase returns interrupted', async () => {
    const run = newRun();
    runs.push(run);
    // Each task writes its index when it starts; 2 slots (or 2 workers of prefetch 1) for 8.
    const commands = Array.from({ length: 8 }, (_, i) => `echo ${i} >> started; sleep 3`);
    const began = Date.now();
    let returnedAfter = 0;
    const summary = await runPhase(settings, run, commands, {
      during: (dispatcher) => {
        void waitFor(() => existsSync(join(dir, 'started')), 20_000, 'a task to start').then(() =>
          dispatcher.interrupt(),
        );
      },
      after: async (transport) => {
        returnedAfter = Date.now() - began;
        // Interrupted, the transport takes no more tasks: one submitted now never runs.
        await transport.submit(message(run, 'touch late'));
        await new Promise((resolve) => setTimeout(resolve, 1500));
      },
    });
    expect(summary.interrupted).toBe(true);
    expect(summary.succeeded).toBeLessThan(commands.length);
    // The phase did not wait for its tasks: 8 tasks of 3 s on 2 slots take 12 s.
    expect(returnedAfter).toBeLessThan(10_000);
    expect(existsSync(join(dir, 'late'))).toBe(false);
  });

  it('resume: a second run with the same run id skips what succeeded', async () => {
    const run = newRun();
    runs.push(run);
    // `once` succeeds; `second` fails the first time and succeeds when run again.
    const once = 'echo x >> once-ran';
    const second = 'if [ -e second-tried ]; then echo ok; else touch second-tried; exit 1; fi';
    const first = await runPhase(settings, run, [once, second]);
    expect(first).toMatchObject({ succeeded: 1, failed: 1, skipped: 0 });
    const again = await runPhase(settings, run, [once, second]);
    expect(again).toMatchObject({ succeeded: 1, failed: 0, skipped: 1 });
    expect(readFileSync(join(dir, 'once-ran'), 'utf8')).toBe('x\n');
    expect(ledgerEnds(run).filter((end) => end.command === once)).toHaveLength(1);
  });

  const ledgerEnds = (run: string) => endsOf(ledgerOf(settings.stateDir, run));
});
