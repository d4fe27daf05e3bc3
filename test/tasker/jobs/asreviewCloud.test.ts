import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planRun } from '../../../tasker/jobs/plan.js';
import { resolveRules } from '../../../tasker/jobs/rules.js';
import { readSpool } from '../../../tasker/jobs/spool.js';
import { eachTempDir, FIXTURES, tasker } from '../../helpers/cli.js';

// Every jobs file of the corpus that comes with asreview-cloud's parts: the real Makita files
// (makita/), files of other shapes split by split-file.py itself (split-shapes/), and files
// whose parts were derived from the script's line handling (line-endings/: its README says how).
const CORPUS_ROOT = join(FIXTURES, 'corpus');
const FOLDERS = readdirSync(CORPUS_ROOT).flatMap((group) =>
  readdirSync(join(CORPUS_ROOT, group), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(CORPUS_ROOT, group, entry.name))
    .filter((folder) => existsSync(join(folder, 'jobs.sh.part1'))),
);
const CASES = FOLDERS.map((folder) => [relative(CORPUS_ROOT, folder), folder] as const);

let dir: string;
eachTempDir((made) => (dir = made));

const copyJobs = (folder: string): string => {
  const jobs = join(dir, 'jobs.sh');
  copyFileSync(join(folder, 'jobs.sh'), jobs);
  return jobs;
};

/** The lines of a part file, each without its line break (a last one may have none). */
const partLines = (path: string): string[] => {
  const lines = readFileSync(path, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
};

const spooled = async (spool: string): Promise<string[]> => {
  const commands: string[] = [];
  for await (const task of readSpool(spool)) commands.push(task.command);
  return commands;
};

describe('--rules asreview-cloud on the whole corpus', () => {
  it('covers every folder of the corpus', () => {
    expect(CASES.map(([name]) => name.split('/')[0])).toEqual(
      expect.arrayContaining(['makita', 'split-shapes', 'line-endings']),
    );
    expect(CASES.length).toBeGreaterThanOrEqual(11);
  });

  it.each(CASES)('tasker split writes the parts of %s byte for byte', async (_name, folder) => {
    copyJobs(folder);
    const result = await tasker(['split', 'jobs.sh', '--rules', 'asreview-cloud'], { cwd: dir });
    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
    expect(result.stdout.split('\n').map((line) => line.split(/\s+/).slice(0, 3))).toEqual([
      ['jobs.sh.part1', 'part1', 'serial'],
      ['jobs.sh.part2', 'part2', 'parallel'],
      ['jobs.sh.part3', 'part3', 'parallel'],
    ]);
    for (const part of [1, 2, 3]) {
      const made = readFileSync(join(dir, `jobs.sh.part${part}`));
      const expected = readFileSync(join(folder, `jobs.sh.part${part}`));
      // Compared as text first for a readable diff, then byte for byte.
      expect(made.toString('latin1'), `part ${part}`).toBe(expected.toString('latin1'));
      expect(made.equals(expected), `part ${part}`).toBe(true);
    }
    expect(readdirSync(dir).sort()).toEqual([
      'jobs.sh',
      'jobs.sh.part1',
      'jobs.sh.part2',
      'jobs.sh.part3',
    ]);
  });

  it.each(CASES)(
    'a run of %s has the parts as its phases, line for line',
    async (_name, folder) => {
      const jobs = copyJobs(folder);
      const plans = await planRun(
        jobs,
        resolveRules({ rules: 'asreview-cloud' }),
        'r1',
        join(dir, '.warren'),
      );
      expect(plans.map((plan) => [plan.name, plan.kind])).toEqual(
        [
          ['part1', 'serial'],
          ['part2', 'parallel'],
          ['part3', 'parallel'],
        ].filter(([name]) => partLines(join(folder, `jobs.sh.${name}`)).length > 0),
      );
      for (const plan of plans) {
        const expected = partLines(join(folder, `jobs.sh.${plan.name}`));
        expect(await spooled(plan.spool), plan.name).toEqual(expected);
        expect(plan.total).toBe(expected.length);
      }
    },
  );
});

describe('--rules asreview-cloud, what it refuses and what it keeps', () => {
  it('refuses a file with no `simulate` line: one line, exit 2, nothing written or recorded', async () => {
    writeFileSync(join(dir, 'nosim.sh'), 'mkdir out\npython -m asreview metrics x -o y\n');
    writeFileSync(join(dir, 'empty.sh'), '');
    // Parts of an earlier split stay as they were.
    writeFileSync(join(dir, 'nosim.sh.part1'), 'mkdir before\n');
    const message = (file: string) =>
      `tasker: \`${file}\` has no line containing \`simulate\`: asreview-cloud's split needs one (use --rules makita or --phase)`;
    for (const file of ['nosim.sh', 'empty.sh']) {
      for (const command of ['split', 'run']) {
        const result = await tasker([command, file, '--rules', 'asreview-cloud'], { cwd: dir });
        expect(result.exitCode, `${command} ${file}`).toBe(2);
        expect(result.stderr, `${command} ${file}`).toBe(message(file));
      }
    }
    // A broker that cannot be reached is not even tried: the file is refused first.
    const unreachable = await tasker(['run', 'nosim.sh', '--rules', 'asreview-cloud'], {
      cwd: dir,
      env: { RABBITMQ_URL: 'amqp://guest:guest@127.0.0.1:1', WARREN_CONNECT_TIMEOUT: '1s' },
    });
    expect(unreachable.exitCode).toBe(2);
    expect(unreachable.stderr).toBe(message('nosim.sh'));
    expect(readdirSync(dir).sort()).toEqual(['empty.sh', 'nosim.sh', 'nosim.sh.part1']);
    expect(readFileSync(join(dir, 'nosim.sh.part1'), 'utf8')).toBe('mkdir before\n');
  });

  it('splits a file whose only `simulate` is in a comment into three empty parts, as split-file.py does', async () => {
    writeFileSync(join(dir, 'jobs.sh'), '# simulate later\n\n');
    const result = await tasker(['split', 'jobs.sh', '--rules', 'asreview-cloud'], { cwd: dir });
    expect(result.exitCode).toBe(0);
    for (const part of [1, 2, 3])
      expect(readFileSync(join(dir, `jobs.sh.part${part}`), 'utf8')).toBe('');
    // A run of it has nothing to run.
    const run = await tasker(['run', 'jobs.sh', '--rules', 'asreview-cloud'], { cwd: dir });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toBe('tasker: jobs file `jobs.sh` has no commands');
  });

  it('refuses text that is not UTF-8, naming the line, as split-file.py fails on it', async () => {
    writeFileSync(
      join(dir, 'jobs.sh'),
      Buffer.concat([
        Buffer.from('mkdir out\npython -m asreview simulate a.csv\necho '),
        Buffer.from([0xe9, 0x0a]),
      ]),
    );
    for (const command of ['split', 'run']) {
      const result = await tasker([command, 'jobs.sh', '--rules', 'asreview-cloud'], { cwd: dir });
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toBe('tasker: line 3 of `jobs.sh` is not valid UTF-8');
    }
    expect(readdirSync(dir)).toEqual(['jobs.sh']);
  });

  it('splits a command continued over lines as split-file.py does, but a run refuses it', async () => {
    writeFileSync(
      join(dir, 'jobs.sh'),
      'mkdir out\npython -m asreview simulate a.csv \\\n  --seed 5 -o out/a.asreview\n',
    );
    const split = await tasker(['split', 'jobs.sh', '--rules', 'asreview-cloud'], { cwd: dir });
    expect(split.exitCode).toBe(0);
    // The continuation has no `simulate` and comes after the last one: part 3.
    expect(readFileSync(join(dir, 'jobs.sh.part2'), 'utf8')).toBe(
      'python -m asreview simulate a.csv \\\n',
    );
    expect(readFileSync(join(dir, 'jobs.sh.part3'), 'utf8')).toBe('  --seed 5 -o out/a.asreview\n');
    const run = await tasker(['run', 'jobs.sh', '--rules', 'asreview-cloud'], { cwd: dir });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toBe(
      "tasker: line 2 of `jobs.sh` ends in `\\`: asreview-cloud's split cuts a command continued over lines apart (use --rules makita or --phase)",
    );
    expect(existsSync(join(dir, '.warren', 'runs'))).toBe(false);
    expect(existsSync(join(dir, 'jobs.sh.part4'))).toBe(false);
  });

  it('has no use for --rest', () => {
    expect(() => resolveRules({ rules: 'asreview-cloud', rest: 'tail' })).toThrow(
      '--rest has no use with --rules asreview-cloud: every line has a part',
    );
  });
});

describe('running the parts as asreview-cloud does', () => {
  /** A copy of the Makita example with the data files the stand-in python reads. */
  const study = (name: string): string => {
    const work = join(dir, name);
    mkdirSync(join(work, 'data'), { recursive: true });
    copyFileSync(join(CORPUS_ROOT, 'makita', 'basic_example', 'jobs.sh'), join(work, 'jobs.sh'));
    for (const data of new Set(
      readFileSync(join(work, 'jobs.sh'), 'utf8').match(/data\/\S+\.csv/g),
    ))
      writeFileSync(join(work, data), 'x\n');
    return work;
  };
  type Phase = { name: string; kind: string; total: number; succeeded: number };
  type Task = { phase: string; command: string };
  const phasesOf = async (cwd: string, run: string) => {
    const status = JSON.parse(
      (await tasker(['status', '--json', '--run-id', run], { cwd })).stdout,
    );
    return {
      phases: (status.phases as Phase[]).map((phase) => [
        phase.name,
        phase.kind,
        phase.total,
        phase.succeeded,
      ]),
      tasks: (status.tasks as Task[]).map((task) => [task.phase, task.command]).sort(),
    };
  };

  it('part 1 serially with send --serial, then parts 2 and 3: the same phases and tasks as run --rules asreview-cloud', async () => {
    const parts = study('parts');
    const env = { WARREN_RUN_ID: 'parts-1', WARREN_LOG_LEVEL: 'warn' };
    expect(
      (await tasker(['split', 'jobs.sh', '--rules', 'asreview-cloud'], { cwd: parts })).exitCode,
    ).toBe(0);
    const steps: string[][] = [
      ['send', 'jobs.sh.part1', '--phase', 'part1', '--serial'],
      ['send', 'jobs.sh.part2', '--phase', 'part2'],
      // One slot: part 3's merges read the metrics files that part 3 itself writes.
      ['send', 'jobs.sh.part3', '--phase', 'part3', '-j', '1'],
    ];
    for (const step of steps) {
      const result = await tasker(step, { cwd: parts, env });
      expect(result.exitCode, step.join(' ')).toBe(0);
    }

    const whole = study('whole');
    const run = await tasker(
      ['run', 'jobs.sh', '--rules', 'asreview-cloud', '-j', '1', '--run-id', 'whole-1'],
      {
        cwd: whole,
        env: { WARREN_LOG_LEVEL: 'warn' },
      },
    );
    expect(run.exitCode).toBe(0);

    const sent = await phasesOf(parts, 'parts-1');
    const lines = [1, 2, 3].map((part) => partLines(join(parts, `jobs.sh.part${part}`)));
    expect(sent.phases).toEqual([
      ['part1', 'serial', lines[0]?.length, lines[0]?.length],
      ['part2', 'parallel', lines[1]?.length, lines[1]?.length],
      ['part3', 'parallel', lines[2]?.length, lines[2]?.length],
    ]);
    expect(await phasesOf(whole, 'whole-1')).toEqual(sent);
    expect(readFileSync(join(whole, 'output/tables/metrics_all.csv'))).toEqual(
      readFileSync(join(parts, 'output/tables/metrics_all.csv')),
    );
  });

  it('send --serial cannot be --no-wait: a serial phase runs in the tasker', async () => {
    writeFileSync(join(dir, 'part1.sh'), 'true\n');
    const result = await tasker(['send', 'part1.sh', '--serial', '--no-wait'], { cwd: dir });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(
      /^tasker: option '--serial' cannot be used with option '--no-wait'$/,
    );
  });
});
