import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eachTempDir, processesIn, tasker, waitFor } from '../../helpers/cli.js';

let dir: string;
eachTempDir((made) => (dir = made), { leftovers: 'wait' });

/** `tasker status` as a person reads it: the run line, and each phase's row by column. */
async function table(run: string) {
  const lines = (await tasker(['status', '--run-id', run], { cwd: dir })).stdout.split('\n');
  const header = (lines[2] ?? '').split(/\s+/);
  const phases = lines
    .slice(3)
    .filter((line) => line.trim() !== '')
    .map((line) => Object.fromEntries(line.split(/\s+/).map((cell, i) => [header[i], cell])));
  return { state: /^run \S+: (\S+)/.exec(lines[0] ?? '')?.[1], phases };
}

async function json(run: string) {
  return JSON.parse((await tasker(['status', '--json', '--run-id', run], { cwd: dir })).stdout);
}

/** The table says what the JSON says, count for count (a count the table leaves out is 0). */
async function agree(run: string) {
  const [shown, data] = [await table(run), await json(run)];
  expect(shown.state).toBe(data.state);
  for (const [index, phase] of data.phases.entries()) {
    const row = shown.phases[index] ?? {};
    for (const column of ['total', 'succeeded', 'failed', 'running', 'queued', 'cancelled'])
      expect(Number(row[column] ?? 0), `${phase.name} ${column}`).toBe(phase[column]);
  }
  return data;
}

describe('tasker cancel', () => {
  it('waits for the tasker to stop; the table says cancelled as --json does, while it stops and after', async () => {
    writeFileSync(
      join(dir, 'jobs.sh'),
      [
        // Two tasks that ignore SIGTERM: the tasker takes its kill grace to stop them.
        ...Array.from({ length: 2 }, () => `sh -c 'trap "" TERM; sleep 30'`),
        ...Array.from({ length: 4 }, () => 'sleep 30'),
        'wait',
        'echo later',
        'echo later too',
      ].join('\n'),
    );
    const run = tasker(['run', 'jobs.sh', '-j', '2', '--run-id', 'c-1', '--kill-grace', '8s'], {
      cwd: dir,
    });
    await waitFor(() => processesIn(dir).length >= 4, 15_000, 'the two tasks running');
    const cancel = tasker(['cancel', '--run-id', 'c-1'], { cwd: dir });
    // While the tasker stops: nothing not started will run, the two running are being stopped.
    await waitFor(async () => (await json('c-1')).state === 'cancelling', 10_000, 'cancelling');
    const stopping = await agree('c-1');
    expect(stopping.phases.map((phase: { queued: number }) => phase.queued)).toEqual([0, 0]);
    expect(stopping.phases[0]).toMatchObject({ running: 2, cancelled: 4 });
    expect(stopping.phases[1].cancelled).toBe(2);
    const cancelled = await cancel;
    expect(cancelled.stdout).toBe(
      'cancelled run c-1: its tasker stopped and recorded it; no broker configured, so no workers told',
    );
    expect((await run).exitCode).toBe(130);
    // Once `cancel` is back the run is over, and both forms say so.
    const after = await agree('c-1');
    expect(after.state).toBe('cancelled');
    expect(after.phases.map((phase: { cancelled: number }) => phase.cancelled)).toEqual([6, 2]);
    expect((await table('c-1')).phases[0]).toMatchObject({ queued: '0', cancelled: '6' });
  });
});
