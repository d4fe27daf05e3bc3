import { appendFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { statePaths } from '../../../shared/statePaths.js';
import { DurationHistory, forecastMs } from '../../../tasker/history/index.js';
import { eachTempDir } from '../../helpers/cli.js';

let dir: string;
eachTempDir((made) => {
  dir = made;
});

/** A succeeded (or failed) `end` line as the tasker writes it. */
function end(command: string, ms: number, finishedAt: number, state = 'succeeded'): string {
  return `${JSON.stringify({
    type: 'end',
    at: new Date(finishedAt).toISOString(),
    task: '0123456789abcdef',
    phase: 'p',
    command,
    attempt: 1,
    state,
    final: true,
    startedAt: new Date(finishedAt - ms).toISOString(),
    finishedAt: new Date(finishedAt).toISOString(),
  })}\n`;
}

function ledger(run: string, text: string): string {
  const path = statePaths.ledger(dir, run);
  mkdirSync(join(dir, 'runs', run), { recursive: true });
  writeFileSync(path, text);
  return path;
}

const t0 = Date.parse('2026-12-01T10:00:00Z');

describe('the duration history of a state dir', () => {
  it('knows how long each command last took when it succeeded, and nothing of failed attempts', async () => {
    ledger(
      'r1',
      end('sim a', 4000, t0) + end('sim b', 1000, t0) + end('sim c', 9000, t0, 'failed'),
    );
    ledger('r2', end('sim a', 5000, t0 + 60_000));
    const { history, load } = await DurationHistory.load(dir);
    expect(load).toMatchObject({ read: 2, rebuilt: true });
    expect(history.expectedMs('sim a')).toBe(5000);
    expect(history.expectedMs('sim b')).toBe(1000);
    expect(history.expectedMs('sim c')).toBeUndefined();
    expect(existsSync(statePaths.durations(dir))).toBe(true);
  });

  it('reads only what the ledgers gained since the last load, and a torn last line once whole', async () => {
    const path = ledger('r1', end('sim a', 4000, t0));
    const first = await DurationHistory.load(dir);
    const again = await DurationHistory.load(dir);
    expect(again.load).toMatchObject({ read: 0, bytes: 0, rebuilt: false });
    expect(again.history.expectedMs('sim a')).toBe(4000);

    const line = end('sim b', 2000, t0 + 1000);
    appendFileSync(path, line.slice(0, 20)); // a tasker in the middle of writing it
    const torn = await DurationHistory.load(dir);
    expect(torn.history.expectedMs('sim b')).toBeUndefined();
    appendFileSync(path, line.slice(20));
    const whole = await DurationHistory.load(dir);
    expect(whole.load.bytes).toBe(line.length);
    expect(whole.history.expectedMs('sim b')).toBe(2000);
    expect(first.history.size).toBe(1);
  });

  it('builds itself again when a run it read is gone, and reads only its saved index with update off', async () => {
    ledger('r1', end('sim a', 4000, t0));
    ledger('r2', end('sim b', 2000, t0));
    await DurationHistory.load(dir);
    rmSync(join(dir, 'runs', 'r2'), { recursive: true });
    const saved = await DurationHistory.load(dir, { update: false });
    expect(saved.history.expectedMs('sim b')).toBe(2000);
    const rebuilt = await DurationHistory.load(dir);
    expect(rebuilt.load.rebuilt).toBe(true);
    expect(rebuilt.history.expectedMs('sim b')).toBeUndefined();
    expect(rebuilt.history.expectedMs('sim a')).toBe(4000);
  });

  it('reads the ledgers fetched from S3 too, unless the state dir has that run itself', async () => {
    const fetched = statePaths.s3Ledgers(dir);
    mkdirSync(fetched, { recursive: true });
    writeFileSync(join(fetched, 'far.jsonl'), end('sim far', 7000, t0));
    writeFileSync(join(fetched, 'r1.jsonl'), end('sim a', 9000, t0 + 60_000));
    writeFileSync(join(fetched, '.next.jsonl.partial'), end('sim next', 1000, t0));
    ledger('r1', end('sim a', 4000, t0));
    const { history, load } = await DurationHistory.load(dir);
    expect(load.read).toBe(2);
    expect(history.expectedMs('sim far')).toBe(7000);
    // The run's own ledger, not an older or newer copy of it from elsewhere.
    expect(history.expectedMs('sim a')).toBe(4000);
    // A download under way is read once it is whole.
    expect(history.expectedMs('sim next')).toBeUndefined();
  });
});

describe('the forecast', () => {
  it('is the work left over the slots in use, and never less than the longest task left', () => {
    // 10 s of work, 2 slots busy: 5 s; one task needing 8 s more: 8 s.
    expect(forecastMs({ leftMs: 10_000, longestMs: 3000, running: 2, busyMs: 0, wallMs: 0 })).toBe(
      5000,
    );
    expect(forecastMs({ leftMs: 10_000, longestMs: 8000, running: 2, busyMs: 0, wallMs: 0 })).toBe(
      8000,
    );
    // Tasks too short to be seen running: the work done per unit of time says 4 slots.
    expect(
      forecastMs({ leftMs: 10_000, longestMs: 0, running: 0, busyMs: 8000, wallMs: 2000 }),
    ).toBe(2500);
  });
});
