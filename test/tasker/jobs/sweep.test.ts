import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fill, placeholders } from '../../../tasker/jobs/sweep.js';
import { eachTempDir, ROOT, tasker } from '../../helpers/cli.js';
import { endsOf, ledgerOf } from '../../helpers/ledger.js';

let dir: string;
eachTempDir((made) => (dir = made), { leftovers: 'fail' });

const write = (name: string, text: string) => writeFileSync(join(dir, name), text);
const lines = (name: string) =>
  readFileSync(join(dir, name), 'utf8').split('\n').filter(Boolean).sort();
const state = () => join(dir, '.warren');

describe('templates', () => {
  it('fill every placeholder, shell-quoted, and leave shell syntax alone', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, on purpose
    const template = 'sim {x} --out=run_{x}_{y}.csv ${HOME} {print $1} {{x}} {}';
    expect(placeholders(template)).toEqual(['x', 'y']);
    const values = new Map([
      ['x', 'a b'],
      ['y', "it's"],
    ]);
    expect(fill(template, (name) => values.get(name) ?? '')).toBe(
      `sim 'a b' --out=run_'a b'_"it's".csv \${HOME} {print $1} {x} {}`,
    );
  });
});

describe('parameter sweeps', () => {
  it('send --params runs one task per CSV row (header, BOM, quotes, CRLF)', async () => {
    writeFileSync(
      join(dir, 'params.csv'),
      '\uFEFFx_scale,y_scale,zoom\r\n1,2,near\r\n3,"4,5","very far"\r\n0.5,1,"it\'s"\r\n',
    );
    const sweep = [
      'send',
      '--params',
      'params.csv',
      'echo {x_scale} {y_scale} {zoom} >> out.txt',
      '--run-id',
      'sw-1',
    ];
    const result = await tasker(sweep, { cwd: dir });
    expect(result.exitCode).toBe(0);
    expect(lines('out.txt')).toEqual(["0.5 1 it's", '1 2 near', '3 4,5 very far']);
    const ends = endsOf(ledgerOf(state(), 'sw-1'));
    expect(ends.map((end) => end.phase)).toEqual(['sweep', 'sweep', 'sweep']);
    expect(ends.map((end) => end.command).sort()).toContain(`echo 3 4\\,5 'very far' >> out.txt`);
    // Task ids are stable: running the same sweep again with the run id skips every task.
    const again = await tasker(sweep, { cwd: dir });
    expect(again.exitCode).toBe(0);
    expect(lines('out.txt')).toHaveLength(3);
  });

  it('send --seq N fills {index} from 1 to N; run --params fills templated lines of a jobs file', async () => {
    const seq = await tasker(['send', '--seq', '5', 'echo {index} >> seq.txt'], { cwd: dir });
    expect(seq.exitCode).toBe(0);
    expect(lines('seq.txt')).toEqual(['1', '2', '3', '4', '5']);

    write('params.csv', 'dataset,seed\nA,1\nB,2\n');
    write(
      'jobs.sh',
      'echo start >> run.txt\nwait\necho {dataset}-{seed}-{index} >> run.txt\nwait\necho end >> run.txt\n',
    );
    const run = await tasker(['run', 'jobs.sh', '--params', 'params.csv', '--run-id', 'sw-2'], {
      cwd: dir,
    });
    expect(run.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'run.txt'), 'utf8').split('\n').filter(Boolean)).toEqual([
      'start',
      expect.stringMatching(/^[AB]-[12]-[12]$/),
      expect.stringMatching(/^[AB]-[12]-[12]$/),
      'end',
    ]);
    expect(lines('run.txt')).toContain('A-1-1');
    expect(lines('run.txt')).toContain('B-2-2');
    const status = JSON.parse(
      (await tasker(['status', '--json', '--run-id', 'sw-2'], { cwd: dir })).stdout,
    );
    expect(status.phases.map((phase: { total: number }) => phase.total)).toEqual([1, 2, 1]);
  });

  it('refuses a bad sweep with one line and exit 2, before anything runs', async () => {
    write('params.csv', 'x,y\n1,2\n');
    write('short.csv', 'x,y\n1\n');
    write('header.csv', 'x,y\n');
    write('dup.csv', 'x,x\n1,2\n');
    write('jobs.sh', 'echo plain >> ran.txt\n');
    const cases: [string[], RegExp][] = [
      [
        ['send', '--params', 'params.csv', 'echo {z}'],
        /uses \{z\}, but the parameters have \{x\}, \{y\}, \{index\}/,
      ],
      [['send', '--params', 'short.csv', 'echo {x}'], /`short.csv` is not valid CSV: .*line 2/],
      [['send', '--params', 'header.csv', 'echo {x}'], /`header.csv` has no rows/],
      [['send', '--params', 'dup.csv', 'echo {x}'], /column `x` appears twice/],
      [
        ['send', '--params', 'missing.csv', 'echo {x}'],
        /cannot read parameters `missing.csv`: no such file/,
      ],
      [['send', '--params', 'params.csv', 'echo same'], /has no \{placeholders\}/],
      [['send', '--seq', '0', 'echo {index}'], /invalid --seq `0`/],
      [['send', '--seq', '3', 'echo {x}'], /uses \{x\}, but the parameters have \{index\}/],
      [['send', '--seq', '3', '--params', 'params.csv', 'echo {x}'], /cannot be used with option/],
      [['run', 'jobs.sh', '--params', 'params.csv'], /no line of `jobs.sh` has \{placeholders\}/],
    ];
    for (const [args, message] of cases) {
      const result = await tasker(args, { cwd: dir });
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(result.stderr, args.join(' ')).toMatch(message);
    }
    expect(existsSync(join(dir, 'ran.txt'))).toBe(false);
    expect(existsSync(join(state(), 'runs')) ? readdirSync(join(state(), 'runs')) : []).toEqual([]);
  });
});

describe('tasks that add tasks (WARREN_SPAWN)', () => {
  it('explores outward from a start point, each point once, and the barrier waits for all', async () => {
    cpSync(join(ROOT, 'examples', 'explore'), dir, { recursive: true });
    const result = await tasker(['run', 'jobs.sh', '--run-id', 'ex-1', '-j', '2'], { cwd: dir });
    expect(result.exitCode).toBe(0);
    const region = readFileSync(join(dir, 'region.txt'), 'utf8');
    expect(region).toContain('@');
    expect(region).toMatch(/explored 55 points, 33 stable/);
    const records = ledgerOf(state(), 'ex-1');
    const ends = endsOf(records);
    const explore = ends.filter((end) => end.command.startsWith('./explore.sh'));
    // Every point ran once, though most were spawned by several neighbours.
    expect(new Set(explore.map((end) => end.command)).size).toBe(explore.length);
    expect(explore).toHaveLength(55);
    // The map ran after every spawned task had finished.
    const map = ends.find((end) => end.command.startsWith('./map.sh'));
    const lastExplore = Math.max(...explore.map((end) => Date.parse(end.finishedAt)));
    expect(Date.parse(map?.startedAt ?? '')).toBeGreaterThanOrEqual(lastExplore);
    const spawned = records.flatMap((record) => (record.type === 'spawn' ? record.tasks : []));
    expect(spawned).toHaveLength(54);
    const status = JSON.parse(
      (await tasker(['status', '--json', '--run-id', 'ex-1'], { cwd: dir })).stdout,
    );
    expect(status.phases[1]).toMatchObject({ total: 55, succeeded: 55 });
  });

  it('stops adding spawned tasks at --max-tasks, and a killed run resumes its spawned tasks', async () => {
    cpSync(join(ROOT, 'examples', 'explore'), dir, { recursive: true });
    const capped = await tasker(['run', 'jobs.sh', '--run-id', 'ex-2', '--max-tasks', '12'], {
      cwd: dir,
    });
    expect(capped.exitCode).toBe(0);
    expect(capped.stderr).toMatch(/--max-tasks 12 reached: tasks spawned from now on are dropped/);
    // 3 planned tasks + 9 spawned.
    expect(endsOf(ledgerOf(state(), 'ex-2'))).toHaveLength(12);

    // Each point takes a moment; the tasker is killed mid-phase and resumed.
    const slow = readFileSync(join(dir, 'explore.sh'), 'utf8').replace('x=$1', 'sleep 0.2\nx=$1');
    writeFileSync(join(dir, 'explore.sh'), slow);
    const first = tasker(['run', 'jobs.sh', '--run-id', 'ex-3', '-j', '2'], { cwd: dir });
    while (
      !existsSync(join(state(), 'runs/ex-3/ledger.jsonl')) ||
      endsOf(ledgerOf(state(), 'ex-3')).length < 10
    )
      await new Promise((resolve) => setTimeout(resolve, 50));
    first.kill('SIGKILL');
    await first;
    await new Promise((resolve) => setTimeout(resolve, 500)); // its slots' tasks end
    const second = await tasker(['run', 'jobs.sh', '--run-id', 'ex-3', '-j', '2'], { cwd: dir });
    expect(second.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'region.txt'), 'utf8')).toMatch(/explored 55 points, 33 stable/);
    const succeeded = endsOf(ledgerOf(state(), 'ex-3')).filter(
      (end) => end.state === 'succeeded' && end.command.startsWith('./explore.sh'),
    );
    expect(new Set(succeeded.map((end) => end.command)).size).toBe(55);
  });
});
