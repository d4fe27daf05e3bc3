import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tasker, waitFor } from '../../helpers/cli.js';
import {
  brokerUrl,
  declareTaskQueue,
  deleteQueues,
  eachFleet,
  startWorkers,
  type WorkerProcess,
  waitForConsumers,
} from '../../helpers/fleet.js';
import { endsOf, ledgerOf } from '../../helpers/ledger.js';

let dir: string;
let queue: string;
let workers: WorkerProcess[];
eachFleet((fleet) => ({ dir, queue, workers } = fleet));

const state = () => join(dir, '.warren');
const write = (name: string, text: string) => writeFileSync(join(dir, name), text);

/**
 * Two causes: `check.sh N` fails (exit 3, `cannot open /tmp/x/N.csv`) until a file `ok` exists,
 * four times over two phases; `alpha.sh A` fails with a ValueError (exit 1) until `alpha-ok`
 * exists, twice. A third phase runs after both.
 */
function writeJobs(): void {
  write(
    'check.sh',
    'if [ -e ok ]; then echo "$1" >> fixed.txt; exit 0; fi\necho "cannot open /tmp/x/$1.csv" >&2; exit 3\n',
  );
  write(
    'alpha.sh',
    'if [ -e alpha-ok ]; then exit 0; fi\necho Traceback >&2; echo "ValueError: bad alpha $1" >&2; exit 1\n',
  );
  write(
    'jobs.sh',
    [
      'sh check.sh 11',
      'sh alpha.sh 0.5',
      'sh check.sh 222',
      'echo fine',
      'sh alpha.sh 0.75',
      'sh check.sh 3',
      'wait',
      'sh check.sh 4096',
      'wait',
      'echo after >> after.txt',
      '',
    ].join('\n'),
  );
}

interface Group {
  index: number;
  count: number;
  class: string | null;
  exitCode: number | null;
  signature: string;
  example: { task: string; phase: string; command: string; line: string };
  tasks: string[];
}

async function failedJson(run: string): Promise<{ state: string; groups: Group[] }> {
  const result = await tasker(['status', '--failed', '--json', '--run-id', run], { cwd: dir });
  expect(result.exitCode).toBe(0);
  return JSON.parse(result.stdout);
}

/** The task id of each command of the run, from its ledger's end records. */
function idsOf(run: string): Map<string, string> {
  return new Map(endsOf(ledgerOf(state(), run)).map((end) => [end.command, end.task]));
}

/** The ledger's records after its last `run` record: what the latest session did. */
function lastSession(run: string) {
  const records = ledgerOf(state(), run);
  const start = records.map((record) => record.type).lastIndexOf('run');
  return records.slice(start);
}

/** The latest session's attempts, `[command, attempt, state]`, in the order of the jobs file. */
function sessionEnds(run: string): [string, number, string][] {
  const order = readFileSync(join(dir, 'jobs.sh'), 'utf8').split('\n');
  return endsOf(lastSession(run))
    .map((end): [string, number, string] => [end.command, end.attempt, end.state])
    .sort(([a], [b]) => order.indexOf(a) - order.indexOf(b));
}

describe('failures by cause, and tasker rerun', () => {
  it('groups failures by cause; a rerun of group 1 on workers runs exactly its tasks, phase by phase', async () => {
    writeJobs();
    await declareTaskQueue(queue);
    workers.push(...startWorkers(2, { cwd: dir, queue }));
    await waitForConsumers(queue, 2);
    const env = { RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue };
    const run = ['--run-id', 'groups-1', '--retries', '0'];
    const first = await tasker(['run', 'jobs.sh', ...run, '--keep-going'], { cwd: dir, env });
    expect(first.exitCode).toBe(1);
    const id = idsOf('groups-1');
    const checks = ['sh check.sh 11', 'sh check.sh 222', 'sh check.sh 3', 'sh check.sh 4096'];
    const alphas = ['sh alpha.sh 0.5', 'sh alpha.sh 0.75'];

    // The text: the largest group first, numbered, masked, with one example.
    const text = await tasker(['status', '--failed', '--run-id', 'groups-1'], { cwd: dir });
    expect(text.stdout).toContain(
      'failures by cause (class, exit code, last line masked): 2 groups; `tasker rerun --group N` runs one again',
    );
    expect(text.stdout).toContain(
      [
        '  1. 4 tasks, exit 3: cannot open <path>',
        `     e.g. ${id.get('sh check.sh 11')} [phase1] sh check.sh 11`,
        '     | cannot open /tmp/x/11.csv',
        '  2. 2 tasks, exit 1: ValueError: bad alpha <n>',
        `     e.g. ${id.get('sh alpha.sh 0.5')} [phase1] sh alpha.sh 0.5`,
        '     | ValueError: bad alpha 0.5',
      ].join('\n'),
    );
    // The JSON: the same groups, with every task id, in phase and file order.
    const before = await failedJson('groups-1');
    expect(before.groups).toEqual([
      {
        index: 1,
        count: 4,
        class: 'exit',
        exitCode: 3,
        signature: 'cannot open <path>',
        example: {
          task: id.get('sh check.sh 11'),
          phase: 'phase1',
          command: 'sh check.sh 11',
          reason: 'exit 3',
          line: 'cannot open /tmp/x/11.csv',
        },
        tasks: checks.map((command) => id.get(command)),
      },
      expect.objectContaining({
        index: 2,
        count: 2,
        class: 'exit',
        exitCode: 1,
        signature: 'ValueError: bad alpha <n>',
        tasks: alphas.map((command) => id.get(command)),
      }),
    ]);

    // A group that does not exist, or a filter that matches nothing: one line, exit 2, and the
    // ledger untouched.
    const records = ledgerOf(state(), 'groups-1').length;
    for (const args of [['--group', '3'], ['--class', 'oom'], []]) {
      const refused = await tasker(['rerun', ...args, '--run-id', 'groups-1'], { cwd: dir, env });
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    }
    const refused = await tasker(['rerun', '--group', '3', '--run-id', 'groups-1'], {
      cwd: dir,
      env,
    });
    expect(refused.stderr).toBe(
      'tasker: run groups-1 has no failure group 3: it has 2 (`tasker status --failed` lists them)',
    );
    expect(ledgerOf(state(), 'groups-1')).toHaveLength(records);

    // Fix the cause, and run group 1 again.
    write('ok', '');
    const rerun = await tasker(['rerun', '--group', '1', ...run], { cwd: dir, env });
    // The other group still failed: so is the run.
    expect(rerun.exitCode).toBe(1);
    expect(rerun.stderr).toContain(
      'rerunning 4 failed tasks of run groups-1 (group 1) in 2 phases',
    );
    expect(rerun.stderr).toContain('later phases that already ran (phase3) do not run again');
    expect(rerun.stderr).toContain('2 other tasks of the run did not succeed');
    const session = lastSession('groups-1');
    expect(session[0]).toMatchObject({ type: 'run', mode: 'rabbitmq', command: 'rerun --group 1' });
    const ends = endsOf(session);
    // New attempts for the group's tasks only, on the workers, each once, succeeded.
    expect(ends.map((end) => [end.command, end.attempt, end.state]).sort()).toEqual(
      checks.map((command) => [command, 2, 'succeeded']).sort(),
    );
    expect(ends.every((end) => /^w[12]-/.test(end.worker))).toBe(true);
    expect(readFileSync(join(dir, 'fixed.txt'), 'utf8').split('\n').filter(Boolean).sort()).toEqual(
      ['11', '222', '3', '4096'].sort(),
    );
    // Phase by phase: phase2's task started after phase1's had ended.
    const phase1End = Math.max(
      ...ends.filter((end) => end.phase === 'phase1').map((end) => Date.parse(end.finishedAt)),
    );
    const phase2 = ends.find((end) => end.phase === 'phase2');
    expect(Date.parse(phase2?.startedAt ?? '')).toBeGreaterThanOrEqual(phase1End);
    // Nothing else ran: not the other group, not phase3.
    expect(readFileSync(join(dir, 'after.txt'), 'utf8')).toBe('after\n');
    expect(session.filter((record) => record.type === 'phase').map((r) => r.phase)).toEqual([
      'phase1',
      'phase2',
    ]);

    // Afterwards only the other group is left, numbered 1 now.
    const after = await failedJson('groups-1');
    expect(after.state).toBe('failed');
    expect(after.groups.map((group) => [group.index, group.count, group.signature])).toEqual([
      [1, 2, 'ValueError: bad alpha <n>'],
    ]);
  });

  it('reruns in local mode by class and signature, and the run succeeds once every task has', async () => {
    writeJobs();
    const run = ['--run-id', 'groups-2', '--retries', '0', '--local'];
    const first = await tasker(['run', 'jobs.sh', ...run, '--keep-going'], { cwd: dir });
    expect(first.exitCode).toBe(1);
    // A line as printed finds its group through the masks; with the class too. Not fixed yet:
    // the two tasks fail again, in a second attempt each, and nothing else runs.
    const unfixed = await tasker(
      ['rerun', '--class', 'exit', '--signature', 'ValueError: bad alpha 0.9', ...run],
      { cwd: dir },
    );
    expect(unfixed.exitCode).toBe(1);
    expect(sessionEnds('groups-2')).toEqual([
      ['sh alpha.sh 0.5', 2, 'failed'],
      ['sh alpha.sh 0.75', 2, 'failed'],
    ]);

    write('alpha-ok', '');
    const alpha = await tasker(['rerun', '--signature', 'bad alpha', ...run], { cwd: dir });
    expect(alpha.exitCode).toBe(1);
    expect(sessionEnds('groups-2')).toEqual([
      ['sh alpha.sh 0.5', 3, 'succeeded'],
      ['sh alpha.sh 0.75', 3, 'succeeded'],
    ]);
    expect((await failedJson('groups-2')).groups.map((group) => group.count)).toEqual([4]);

    // The last cause fixed: its rerun leaves nothing failed, and the run succeeded.
    write('ok', '');
    const fixed = await tasker(['rerun', '--group', '1', ...run], { cwd: dir });
    expect(fixed.exitCode).toBe(0);
    expect(fixed.stderr).toContain('run groups-2 succeeded');
    const ends = endsOf(lastSession('groups-2'));
    expect(sessionEnds('groups-2')).toEqual([
      ['sh check.sh 11', 2, 'succeeded'],
      ['sh check.sh 222', 2, 'succeeded'],
      ['sh check.sh 3', 2, 'succeeded'],
      ['sh check.sh 4096', 2, 'succeeded'],
    ]);
    expect(ends.every((end) => end.worker.startsWith('local-'))).toBe(true);
    const status = await failedJson('groups-2');
    expect(status.state).toBe('succeeded');
    expect(status.groups).toEqual([]);
    const text = await tasker(['status', '--failed', '--run-id', 'groups-2'], { cwd: dir });
    expect(text.stdout).toContain('no failed tasks');
    expect(text.stdout).not.toContain('failures by cause');
  });

  it('refuses to rerun while an interrupted session has tasks out on the broker', async () => {
    writeJobs();
    const run = ['--run-id', 'groups-3', '--retries', '0'];
    expect((await tasker(['run', 'jobs.sh', ...run, '--local'], { cwd: dir })).exitCode).toBe(1);
    // A resume through the broker with no worker: its tasks wait on the queue; the tasker is
    // killed, and they stay out.
    await declareTaskQueue(queue);
    const env = { RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue };
    const resume = tasker(['run', 'jobs.sh', ...run], { cwd: dir, env });
    try {
      await waitFor(
        () =>
          ledgerOf(state(), 'groups-3').flatMap((record) =>
            record.type === 'queued' ? record.tasks : [],
          ).length >= 5,
        20_000,
        'the resumed tasks on the broker',
      );
      resume.kill('SIGKILL');
      await resume;
      const status = async () =>
        JSON.parse(
          (await tasker(['status', '--json', '--run-id', 'groups-3'], { cwd: dir })).stdout,
        );
      await waitFor(
        async () => (await status()).state !== 'running',
        20_000,
        'the lock to go stale',
      );
      const records = ledgerOf(state(), 'groups-3').length;
      const refused = await tasker(['rerun', '--group', '1', '--run-id', 'groups-3'], {
        cwd: dir,
        env,
      });
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr).toBe(
        'tasker: run groups-3 has 5 tasks still out on the broker from an interrupted session; resume the run (or `tasker collect --run-id groups-3`) first',
      );
      expect(ledgerOf(state(), 'groups-3')).toHaveLength(records);
    } finally {
      resume.kill('SIGKILL');
      await resume;
      await deleteQueues('warren.results.groups-3');
    }
  });
});
