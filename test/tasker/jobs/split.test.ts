import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { splitToParts } from '../../../tasker/jobs/plan.js';
import { resolveRules } from '../../../tasker/jobs/rules.js';
import { CORPUS, eachTempDir, tasker } from '../../helpers/cli.js';

const EXAMPLES = readdirSync(CORPUS).filter((name) => name.endsWith('_example'));

let dir: string;
eachTempDir((made) => (dir = made));

function copyJobs(example: string): string {
  const jobs = join(dir, 'jobs.sh');
  copyFileSync(join(CORPUS, example, 'jobs.sh'), jobs);
  return jobs;
}

const linesOf = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean);

// --rules asreview-cloud against the whole corpus: asreviewCloud.test.ts.

describe('--rules makita', () => {
  it.each(EXAMPLES)(
    'puts every reader of a file in a later phase than its writer (%s)',
    async (example) => {
      const jobs = copyJobs(example);
      const parts = await splitToParts(jobs, resolveRules({ rules: 'makita' }));
      expect(parts.map((part) => [part.name, part.kind])).toEqual([
        ['prepare', 'serial'],
        ['simulate', 'parallel'],
        ['metrics', 'parallel'],
        ['tables', 'parallel'],
        ['merge', 'serial'],
      ]);
      const [prepare, simulate, metrics, tables, merge] = parts.map((part) => linesOf(part.file));
      expect(
        prepare?.every((line) => line.startsWith('mkdir ') || line.includes('data_describe.py')),
      ).toBe(true);
      expect(simulate?.every((line) => line.includes('asreview simulate'))).toBe(true);
      expect(metrics?.every((line) => line.includes('asreview metrics'))).toBe(true);
      expect(tables?.every((line) => / -s /.test(line))).toBe(true);
      expect(merge).toEqual([
        'python scripts/merge_descriptives.py',
        'python scripts/merge_metrics.py',
      ]);
      // Nothing is lost or duplicated, and file order holds within each phase.
      const all = linesOf(jobs).filter((line) => !line.startsWith('#'));
      expect(parts.reduce((sum, part) => sum + part.lines, 0)).toBe(all.length);
      expect(
        [
          ...(prepare ?? []),
          ...(simulate ?? []),
          ...(metrics ?? []),
          ...(tables ?? []),
          ...(merge ?? []),
        ].sort(),
      ).toEqual(all.sort());
    },
  );

  it('differs from the three-part split where it matters: metrics and their merges are apart', async () => {
    const jobs = copyJobs('basic_example');
    const cloud = await splitToParts(jobs, resolveRules({ rules: 'asreview-cloud' }));
    const part3 = linesOf(cloud[2]?.file ?? '');
    expect(part3.some((line) => line.includes('asreview metrics'))).toBe(true);
    expect(part3.some((line) => line.includes('merge_metrics.py -s'))).toBe(true);
  });
});

describe('wait lines and --phase rules', () => {
  it('splits at wait lines when no rules are given, and a file without them is one phase', async () => {
    const jobs = join(dir, 'jobs.sh');
    writeFileSync(jobs, 'echo a\necho b\nwait\necho c\nwait\nwait\necho d\n');
    const parts = await splitToParts(jobs, resolveRules({}));
    expect(parts.map((part) => [part.name, part.kind, part.lines])).toEqual([
      ['phase1', 'parallel', 2],
      ['phase2', 'parallel', 1],
      ['phase3', 'parallel', 1],
    ]);
    writeFileSync(jobs, 'echo a\necho b\n');
    expect((await splitToParts(jobs, resolveRules({}))).map((part) => part.lines)).toEqual([2]);
  });

  it('sends each line to the first matching phase, and the rest where --rest says', async () => {
    const jobs = join(dir, 'jobs.sh');
    writeFileSync(jobs, 'gen 1\nrun 1\ngen 2\nrun 2\nreport\n');
    const rules = resolveRules({ phases: ['gen=^gen', 'run=^run'], rest: 'tail', serial: ['gen'] });
    const parts = await splitToParts(jobs, rules);
    expect(parts.map((part) => [part.name, part.kind, linesOf(part.file)])).toEqual([
      ['gen', 'serial', ['gen 1', 'gen 2']],
      ['run', 'parallel', ['run 1', 'run 2']],
      ['tail', 'parallel', ['report']],
    ]);
    await expect(
      splitToParts(jobs, resolveRules({ phases: ['gen=^gen', 'run=^run'] })),
    ).rejects.toThrow(/^line 5 of `.*jobs\.sh` matches no custom phase: `report`; add --rest NAME/);
  });

  it('rejects a phase that matches nothing, a bad regex and --rules with --phase', async () => {
    const jobs = join(dir, 'jobs.sh');
    writeFileSync(jobs, 'a\nb\n');
    await expect(
      splitToParts(jobs, resolveRules({ phases: ['a=^a', 'z=^z'], rest: 'a' })),
    ).rejects.toThrow(/phase `z` matches no line/);
    expect(() => resolveRules({ phases: ['x=(unclosed'] })).toThrow(
      /^invalid pattern for phase `x`: .*Unterminated group/,
    );
    expect(() => resolveRules({ rules: 'makita', phases: ['a=b'] })).toThrow(
      '--rules and --phase cannot be used together',
    );
    expect(() => resolveRules({ rules: 'nope' })).toThrow(
      'unknown rules `nope`: expected one of asreview-cloud, makita',
    );
    // A failed split leaves no files behind.
    expect(readdirSync(dir)).toEqual(['jobs.sh']);
  });
});

describe('tasker split', () => {
  it('prints each phase with its kind and line count, and writes JOBS.partN', async () => {
    copyJobs('basic_example');
    const result = await tasker(['split', 'jobs.sh', '--rules', 'makita'], { cwd: dir });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.split('\n').map((line) => line.split(/\s+/))).toEqual([
      ['jobs.sh.part1', 'prepare', 'serial', '16', 'lines'],
      ['jobs.sh.part2', 'simulate', 'parallel', '2', 'lines'],
      ['jobs.sh.part3', 'metrics', 'parallel', '2', 'lines'],
      ['jobs.sh.part4', 'tables', 'parallel', '6', 'lines'],
      ['jobs.sh.part5', 'merge', 'serial', '2', 'lines'],
    ]);
    expect(readdirSync(dir).sort()).toEqual([
      'jobs.sh',
      ...[1, 2, 3, 4, 5].map((n) => `jobs.sh.part${n}`),
    ]);
  });

  it('fails bad input with one line and exit 2, writing nothing', async () => {
    copyJobs('basic_example');
    const cases: [string[], RegExp][] = [
      [['split', 'missing.sh'], /^tasker: cannot read jobs file `missing\.sh`: no such file$/],
      [['split', 'jobs.sh', '--rules', 'bogus'], /^tasker: unknown rules `bogus`/],
      [['split', 'jobs.sh', '--phase', 'a=('], /^tasker: invalid pattern for phase `a`/],
      [
        ['split', 'jobs.sh', '--rules', 'makita', '--phase', 'a=b'],
        /^tasker: option '--rules <name>' cannot be used with option '--phase/,
      ],
      [['split', 'jobs.sh', '--frobnicate'], /^tasker: unknown option '--frobnicate'$/],
      [
        ['split', 'jobs.sh', '--phase', 'mk=^mkdir'],
        /^tasker: line \d+ of `jobs\.sh` matches no custom phase/,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await tasker(args, { cwd: dir });
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(readdirSync(dir)).toEqual(['jobs.sh']);
  });
});
