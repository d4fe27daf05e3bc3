import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CORPUS, eachTempDir, logLines, processesIn, tasker } from '../helpers/cli.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';

let dir: string;
eachTempDir((made) => (dir = made), { leftovers: 'fail' });

const state = () => join(dir, '.warren');
const write = (name: string, text: string) => writeFileSync(join(dir, name), text);
const status = async (...args: string[]) =>
  JSON.parse((await tasker(['status', '--json', ...args], { cwd: dir })).stdout);

describe('tasker run, local mode', () => {
  it.each(readdirSync(CORPUS).filter((name) => name.endsWith('_example')))(
    'runs the makita file %s to the end with --rules makita',
    async (example) => {
      copyFileSync(join(CORPUS, example, 'jobs.sh'), join(dir, 'jobs.sh'));
      mkdirSync(join(dir, 'data'));
      for (const data of new Set(
        readFileSync(join(dir, 'jobs.sh'), 'utf8').match(/data\/\S+\.csv/g),
      ))
        write(data, 'x\n');

      const result = await tasker(
        ['run', 'jobs.sh', '--rules', 'makita', '-j', '2', '--run-id', 'makita-1'],
        { cwd: dir },
      );
      expect(result.stderr).not.toMatch(/"level":(40|50)/);
      expect(result.exitCode).toBe(0);
      expect(logLines(result.stderr)[0]?.msg).toBe(
        'started run makita-1: local mode, local pool, 2 slots (no broker configured); 5 phases',
      );
      expect(existsSync(join(dir, 'output/tables/metrics_all.csv'))).toBe(true);
      expect(existsSync(join(dir, 'output/tables/data_descriptives.csv'))).toBe(true);

      const report = await status();
      expect(report.run).toBe('makita-1');
      expect(report.state).toBe('succeeded');
      expect(report.phases.map((phase: { name: string }) => phase.name)).toEqual([
        'prepare',
        'simulate',
        'metrics',
        'tables',
        'merge',
      ]);
      for (const phase of report.phases) expect(phase.succeeded).toBe(phase.total);
      expect(
        report.tasks.every(
          (task: { state: string; attempts: number }) =>
            task.state === 'succeeded' && task.attempts === 1,
        ),
      ).toBe(true);
      // Each task is recorded succeeded once, and phases never overlap.
      const ends = endsOf(ledgerOf(state(), 'makita-1'));
      expect(ends).toHaveLength(report.tasks.length);
      const order = report.phases.map((phase: { name: string }) => phase.name);
      for (let i = 1; i < order.length; i++) {
        const before = ends
          .filter((end) => end.phase === order[i - 1])
          .map((end) => Date.parse(end.finishedAt));
        const after = ends
          .filter((end) => end.phase === order[i])
          .map((end) => Date.parse(end.startedAt));
        expect(Math.min(...after)).toBeGreaterThanOrEqual(Math.max(...before));
      }
    },
  );

  it('logs readable lines with --log-format pretty (what a terminal gets)', async () => {
    write('jobs.sh', 'echo a\nfalse\n');
    const result = await tasker(['run', 'jobs.sh', '--retries', '0', '--log-format', 'pretty'], {
      cwd: dir,
    });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/^\[\d\d:\d\d:\d\d\] INFO: started run \S+: local mode/m);
    expect(result.stderr).toMatch(/ERROR: {3}\w{16} \[phase1\] exit 1 after 1 attempt: false/);
    expect(result.stderr).not.toContain('"level"');
  });

  it('retries a failing task, reports it, stops after its phase and exits 1', async () => {
    write(
      'jobs.sh',
      "echo fine\nsh -c 'echo input missing >&2; exit 4'\nwait\necho later > later.txt\n",
    );
    const result = await tasker(
      ['run', 'jobs.sh', '--run-id', 'fail-1', '--retries', '2', '--retry-delay', '10ms'],
      { cwd: dir },
    );
    expect(result.exitCode).toBe(1);
    const ends = endsOf(ledgerOf(state(), 'fail-1')).filter((end) => end.state === 'failed');
    expect(ends.map((end) => [end.attempt, end.final, end.exitCode])).toEqual([
      [1, false, 4],
      [2, false, 4],
      [3, true, 4],
    ]);
    expect(ends[2]?.errorTail).toBe('input missing\n');
    expect(result.stderr).toContain('1 task failed:');
    expect(result.stderr).toMatch(
      /\[phase1\] exit 4 after 3 attempts: sh -c 'echo input missing >&2; exit 4'/,
    );
    expect(result.stderr).toContain('| input missing');
    expect(existsSync(join(dir, 'later.txt'))).toBe(false);

    const report = await status('--failed');
    expect(report.tasks).toEqual([
      expect.objectContaining({ state: 'failed', exitCode: 4, attempts: 3, failure: 'exit' }),
    ]);
    expect(report.phases[1]).toMatchObject({ name: 'phase2', queued: 1, succeeded: 0 });

    const text = await tasker(['status', '--failed'], { cwd: dir });
    expect(text.stdout).toMatch(/run fail-1: failed/);
    expect(text.stdout).toMatch(/exit 4 after 3 attempt\(s\): sh -c/);
  });

  it('runs later phases anyway with --keep-going', async () => {
    write('jobs.sh', 'false\nwait\necho later > later.txt\n');
    const result = await tasker(['run', 'jobs.sh', '--retries', '0', '--keep-going'], { cwd: dir });
    expect(result.exitCode).toBe(1);
    expect(readFileSync(join(dir, 'later.txt'), 'utf8')).toBe('later\n');
  });

  it('stops a serial phase at its first failed step', async () => {
    write('jobs.sh', 'mkdir a\nfalse\nmkdir b\n');
    const result = await tasker(
      ['run', 'jobs.sh', '--phase', 'prep=.', '--serial', 'prep', '--retries', '0'],
      { cwd: dir },
    );
    expect(result.exitCode).toBe(1);
    expect(existsSync(join(dir, 'a'))).toBe(true);
    expect(existsSync(join(dir, 'b'))).toBe(false);
  });

  it('kills a task at --timeout and records the class', async () => {
    write('jobs.sh', 'sleep 30\n');
    const result = await tasker(
      ['run', 'jobs.sh', '--timeout', '300ms', '--retries', '0', '--run-id', 't-1'],
      { cwd: dir },
    );
    expect(result.exitCode).toBe(1);
    expect(endsOf(ledgerOf(state(), 't-1'))[0]).toMatchObject({ failure: 'timeout', final: true });
  });

  it('fails bad input with exit 2 and leaves no run behind', async () => {
    for (const args of [
      ['run', 'missing.sh'],
      ['run', 'jobs.sh', '--retries', 'many'],
      ['run', 'jobs.sh', '--timeout', 'soon'],
      ['run', 'jobs.sh', '--run-id', '../escape'],
      ['run', 'jobs.sh', '--rules', 'nope'],
      ['run', 'empty.sh'],
    ]) {
      write('jobs.sh', 'true\n');
      write('empty.sh', '# nothing\n\n');
      const result = await tasker(args, { cwd: dir });
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(result.stderr).toMatch(/^tasker: /);
    }
    expect(existsSync(join(state(), 'runs')) ? readdirSync(join(state(), 'runs')) : []).toEqual([]);
  });
});

describe('tasker run, what went wrong before', () => {
  it('keeps going when a retry comes due while every slot and the queue are busy', async () => {
    const rest = Array.from({ length: 8 }, (_, i) => `sleep 0.2; echo ${i} >> done.txt`);
    write('jobs.sh', `false\n${rest.join('\n')}\n`);
    const result = await tasker(
      ['run', 'jobs.sh', '-j', '1', '--retries', '1', '--retry-delay', '100ms'],
      { cwd: dir },
    );
    expect(result.exitCode).toBe(1);
    expect(readFileSync(join(dir, 'done.txt'), 'utf8').split('\n').filter(Boolean)).toHaveLength(8);
  });

  it('gives phases of later wait stretches names no rule can clash with', async () => {
    write('jobs.sh', 'echo foo1 > f1\necho bar1 > b1\nwait\necho foo2 > f2\necho bar2 > b2\n');
    const result = await tasker(
      ['run', 'jobs.sh', '--phase', 'a-2=foo', '--phase', 'a=bar', '--run-id', 'clash-1'],
      { cwd: dir },
    );
    expect(result.exitCode).toBe(0);
    for (const file of ['f1', 'b1', 'f2', 'b2'])
      expect(existsSync(join(dir, file)), file).toBe(true);
    expect(
      (await status('--run-id', 'clash-1')).phases.map((phase: { name: string }) => phase.name),
    ).toEqual(['a-2', 'a', 'a-2.2', 'a.2']);
  });

  it('refuses names, numbers and durations it cannot honour, before starting', async () => {
    write('jobs.sh', 'true\n');
    const cases: [string[], RegExp][] = [
      [['send', 'jobs.sh', '--phase', '../x'], /^tasker: invalid phase name `\.\.\/x`/],
      [['run', 'jobs.sh', '--timeout', '600h'], /^tasker: invalid timeout `600h`: at most 24 days/],
      [
        ['run', 'jobs.sh', '-j', '99999999999'],
        /^tasker: invalid number of slots `99999999999`: expected a whole number from 1 to 1024$/,
      ],
      [
        ['run', 'jobs.sh', '--workdir', join(dir, 'typo')],
        /^tasker: working directory `.*typo`: no such file$/,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await tasker(args, { cwd: dir });
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    expect(existsSync(join(dir, 'typo'))).toBe(false);
    expect(existsSync(join(state(), 'runs'))).toBe(false);
  });

  it('on a second SIGINT exits at once and takes its running tasks down with it', async () => {
    write('jobs.sh', "trap '' TERM INT; sleep 3; touch late.txt\n");
    const run = tasker(['run', 'jobs.sh', '--kill-grace', '30s'], { cwd: dir });
    while (processesIn(dir).length < 3) await new Promise((resolve) => setTimeout(resolve, 50));
    run.kill('SIGINT');
    await new Promise((resolve) => setTimeout(resolve, 200));
    run.kill('SIGINT');
    expect((await run).exitCode).toBe(130);
    await new Promise((resolve) => setTimeout(resolve, 3500));
    expect(existsSync(join(dir, 'late.txt'))).toBe(false);
  });
});

describe('resume', () => {
  it('after a tasker killed mid-phase, skips what succeeded and finishes the rest', async () => {
    const lines = Array.from(
      { length: 16 },
      (_, i) => `sleep 0.2; echo ${i} $WARREN_TASK_ID >> done.txt`,
    );
    write('jobs.sh', `${lines.join('\n')}\nwait\necho last >> done.txt\n`);
    const first = tasker(['run', 'jobs.sh', '-j', '2', '--run-id', 'resume-1'], { cwd: dir });
    while (
      !existsSync(join(dir, 'done.txt')) ||
      readFileSync(join(dir, 'done.txt'), 'utf8').split('\n').length < 6
    ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    first.kill('SIGKILL');
    expect((await first).signal).toBe('SIGKILL');
    // The killed tasker's shells finish the task they had, then see their input close.
    while (processesIn(dir).length > 0) await new Promise((resolve) => setTimeout(resolve, 50));
    const before = new Set(
      endsOf(ledgerOf(state(), 'resume-1'))
        .filter((end) => end.state === 'succeeded')
        .map((end) => end.task),
    );
    expect(before.size).toBeGreaterThan(0);
    expect(before.size).toBeLessThan(16);

    const second = await tasker(['run', 'jobs.sh', '-j', '2', '--run-id', 'resume-1'], {
      cwd: dir,
    });
    expect(second.exitCode).toBe(0);
    expect(logLines(second.stderr)[0]?.msg).toMatch(/^resuming run resume-1/);
    const runs = readFileSync(join(dir, 'done.txt'), 'utf8').split('\n').filter(Boolean);
    for (const id of before) expect(runs.filter((line) => line.endsWith(id))).toHaveLength(1);
    for (let i = 0; i < 16; i++) expect(runs.some((line) => line.startsWith(`${i} `))).toBe(true);
    expect(runs.filter((line) => line === 'last')).toHaveLength(1);
    const report = await status('--run-id', 'resume-1');
    expect(report.state).toBe('succeeded');
    expect(report.tasks.every((task: { state: string }) => task.state === 'succeeded')).toBe(true);
  });

  it('on SIGINT stops running tasks, records them cancelled, exits 130, and resumes later', async () => {
    write('jobs.sh', 'sleep 20; echo a >> done.txt\nsleep 20; echo b >> done.txt\n');
    const run = tasker(['run', 'jobs.sh', '-j', '2', '--run-id', 'int-1'], { cwd: dir });
    while (processesIn(dir).length < 4) await new Promise((resolve) => setTimeout(resolve, 50));
    run.kill('SIGINT');
    const result = await run;
    expect(result.exitCode).toBe(130);
    const ends = endsOf(ledgerOf(state(), 'int-1'));
    expect(ends.map((end) => [end.state, end.final])).toEqual([
      ['cancelled', false],
      ['cancelled', false],
    ]);
    expect((await status('--run-id', 'int-1')).state).toBe('interrupted');
    write('jobs.sh', 'sleep 0; echo a >> done.txt\nsleep 0; echo b >> done.txt\n');
    expect((await tasker(['run', 'jobs.sh', '--run-id', 'int-1'], { cwd: dir })).exitCode).toBe(0);
  });
});

describe('tasker once and send', () => {
  it('runs a step once per run, whatever the number of calls, quoting several words one by one', async () => {
    const env = { WARREN_RUN_ID: 'steps-1' };
    for (let i = 0; i < 2; i++) {
      const args = [
        'once',
        'prepare',
        '--',
        'sh',
        '-c',
        'echo "$1" >> once.txt',
        'sh',
        "it's a test",
      ];
      const result = await tasker(args, { cwd: dir, env });
      expect(result.exitCode).toBe(0);
    }
    expect(readFileSync(join(dir, 'once.txt'), 'utf8')).toBe("it's a test\n");
  });

  it('takes one argument as a shell command line', async () => {
    const env = { WARREN_RUN_ID: 'steps-2' };
    await tasker(['once', 'prepare', '--', 'echo prepared >> once.txt'], { cwd: dir, env });
    const again = await tasker(['once', 'prepare', '--', 'echo prepared >> once.txt'], {
      cwd: dir,
      env,
    });
    expect(again.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'once.txt'), 'utf8')).toBe('prepared\n');
    expect((await status('--run-id', 'steps-2')).phases).toEqual([
      expect.objectContaining({ name: 'prepare', kind: 'serial', succeeded: 1 }),
    ]);
  });

  it('sends a file as one parallel phase named after it, and part files in turn keep one run', async () => {
    write('jobs.sh', 'mkdir out\necho a > out/a\necho b > out/b\ncat out/a out/b > out/ab\n');
    expect(
      (
        await tasker(
          ['split', 'jobs.sh', '--phase', 'prep=^mkdir', '--phase', 'sim=^echo', '--rest', 'merge'],
          { cwd: dir },
        )
      ).exitCode,
    ).toBe(0);
    const env = { WARREN_RUN_ID: 'parts-1' };
    for (const part of [1, 2, 3]) {
      const result = await tasker(['send', `jobs.sh.part${part}`], { cwd: dir, env });
      expect(result.exitCode).toBe(0);
    }
    expect(readFileSync(join(dir, 'out/ab'), 'utf8')).toBe('a\nb\n');
    const report = await status('--run-id', 'parts-1');
    expect(
      report.phases.map((phase: { name: string; kind: string }) => [phase.name, phase.kind]),
    ).toEqual([
      ['jobs-sh-part1', 'parallel'],
      ['jobs-sh-part2', 'parallel'],
      ['jobs-sh-part3', 'parallel'],
    ]);
  });
});

describe('tasker run --classes', () => {
  it('is refused in local mode with one line and exit 2, leaving no run behind', async () => {
    write('jobs.sh', 'echo hi > hi.txt\n');
    const result = await tasker(['run', 'jobs.sh', '--classes', 'default,large'], { cwd: dir });
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim().split('\n')).toEqual([
      'tasker: size classes need workers: --classes default,large moves tasks between worker queues, and in local mode there are none (set RABBITMQ_URL, or leave out --classes)',
    ]);
    expect(existsSync(join(dir, 'hi.txt'))).toBe(false);
    expect(existsSync(state())).toBe(false);
  });
});
