import { cpSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { cliEnv, eachTempDir, ROOT } from './helpers/cli.js';

let dir: string;
eachTempDir((made) => (dir = made), { leftovers: 'fail' });

/** The README's set-up: the first line of its first `sh` block, split at `&&`. */
function setUpSteps(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /## Set up[\s\S]*?```sh\n([^\n]*)\n/.exec(readme)?.[1];
  expect(block, 'the README has a set-up block').toBeDefined();
  return (block ?? '').split('&&').map((step) => step.trim());
}

/** A PATH with no Warren on it: what a fresh machine has. */
const BARE_PATH = '/usr/local/bin:/usr/bin:/bin';
const sh = (script: string, cwd: string) =>
  execa('sh', ['-c', script], {
    cwd,
    env: cliEnv({ PATH: `${BARE_PATH}:${join(process.execPath, '..')}` }),
    extendEnv: false,
    reject: false,
  });

describe("the README's set-up", () => {
  it('gives `tasker` and `worker` by name, from any folder, as the docs call them', async () => {
    const steps = setUpSteps();
    expect(steps.slice(0, 2)).toEqual(['npm ci', 'npm run build']);
    const onPath = steps.filter((step) => /^export PATH=/.test(step));
    expect(onPath, steps.join(' && ')).toHaveLength(1);
    expect(steps.at(-1)).toMatch(/^tasker run /);
    // Built already (npm test builds first); the step after the build, in the checkout, then
    // the commands by name somewhere else.
    const run = await sh(
      `${onPath[0]} && cd '${dir}' && command -v tasker && command -v worker && tasker --help && worker --help`,
      ROOT,
    );
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    expect(run.stdout.split('\n').slice(0, 2)).toEqual([
      join(ROOT, 'bin', 'tasker'),
      join(ROOT, 'bin', 'worker'),
    ]);
    expect(run.stdout).toContain('Usage: tasker [options] [command]');
    expect(run.stdout).toContain('Usage: worker [options]');
  });

  it('the docs call the commands by name, never through npx (outside the checkout npx asks the registry)', () => {
    const docs = [
      'README.md',
      ...readdirSync(join(ROOT, 'docs')).map((file) => join('docs', file)),
      ...readdirSync(join(ROOT, 'examples')).map((example) =>
        join('examples', example, 'README.md'),
      ),
    ];
    const npx = docs.flatMap((file) => {
      let text: string;
      try {
        text = readFileSync(join(ROOT, file), 'utf8');
      } catch {
        return [];
      }
      return text
        .split('\n')
        .filter((line) => /npx (tasker|worker)\b/.test(line))
        .map((line) => `${file}: ${line}`);
    });
    expect(npx).toEqual([]);
  });

  it('bin/tasker works through a symlink, and says what to do when nothing is built', async () => {
    symlinkSync(join(ROOT, 'bin', 'worker'), join(dir, 'worker'));
    const linked = await sh('./worker --version', dir);
    expect(linked.stdout).toBe(
      JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version,
    );
    // A fresh clone before `npm run build`: one line, exit 2.
    cpSync(join(ROOT, 'bin'), join(dir, 'clone', 'bin'), { recursive: true });
    const unbuilt = await sh('clone/bin/tasker status', dir);
    expect(unbuilt.exitCode).toBe(2);
    expect(unbuilt.stderr).toBe(
      `tasker: not built yet (no ${dir}/clone/dist/tasker/cli.js): run \`npm ci && npm run build\` in ${dir}/clone`,
    );
  });
});
