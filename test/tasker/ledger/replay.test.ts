import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LedgerRecord } from '../../../tasker/ledger/ledger.js';
import { RECORD_TYPES } from '../../../tasker/ledger/records.js';
import { type LedgerVisitor, replayLedger } from '../../../tasker/ledger/replay.js';
import { eachTempDir } from '../../helpers/cli.js';

let dir: string;
eachTempDir((made) => (dir = made));

const at = '2026-11-21T00:00:00.000Z';
const task = 'aaaaaaaaaaaaaaaa';

/** One record of every type, in the order a run writes them. */
const records: LedgerRecord[] = [
  {
    type: 'run',
    at,
    run: 'r',
    version: 1,
    mode: 'local',
    command: 'run jobs.sh',
    host: 'h',
    pid: 1,
  },
  { type: 'plan', at, phases: [{ name: 'p', kind: 'parallel', total: 1 }] },
  { type: 'phase', at, phase: 'p', kind: 'parallel', total: 1 },
  { type: 'order', at, phase: 'p', by: 'longest', known: 1, unknown: 0, knownMs: 1000 },
  { type: 'queued', at, phase: 'p', tasks: [[task, 1]] },
  { type: 'start', at, task, phase: 'p', attempt: 1, worker: 'local-1' },
  {
    type: 'end',
    at,
    task,
    phase: 'p',
    command: 'true',
    attempt: 1,
    state: 'succeeded',
    final: true,
    failure: null,
    reason: null,
    worker: 'local-1',
    host: 'h',
    startedAt: at,
    finishedAt: at,
    exitCode: 0,
    signal: null,
    errorTail: '',
    logs: null,
  },
  { type: 'spawn', at, phase: 'p', by: task, tasks: [['bbbbbbbbbbbbbbbb', 'echo more']] },
  { type: 'phase-end', at, phase: 'p', succeeded: 1, failed: 0, interrupted: false },
  { type: 'cancel', at },
  { type: 'run-end', at, exitCode: 0 },
];

const jsonl = (list: readonly LedgerRecord[]) => list.map((r) => `${JSON.stringify(r)}\n`).join('');

/** A visitor with a handler for every type, each writing down what it got. */
function recorder(seen: string[], name = ''): LedgerVisitor {
  const note = (record: LedgerRecord) => seen.push(`${name}${record.type}`);
  return {
    run: note,
    plan: note,
    phase: note,
    order: note,
    queued: note,
    spawn: note,
    start: note,
    end: (record) => seen.push(`${name}end:${record.task}.${record.attempt}:${record.state}`),
    'phase-end': note,
    cancel: note,
    'run-end': note,
  };
}

describe('the replay of a ledger', () => {
  it('hands each record, in order, to the handler of its type', async () => {
    const path = join(dir, 'ledger.jsonl');
    writeFileSync(path, jsonl(records));
    const seen: string[] = [];
    const { records: count } = await replayLedger(path, recorder(seen));
    expect(count).toBe(records.length);
    expect(seen).toEqual(
      records.map((r) => (r.type === 'end' ? `end:${task}.1:succeeded` : r.type)),
    );
    // Every record type of the union is exercised here.
    expect(new Set(records.map((r) => r.type))).toEqual(RECORD_TYPES);
  });

  it('skips types a visitor has no handler for, and gives every visitor each record in turn', async () => {
    const path = join(dir, 'ledger.jsonl');
    writeFileSync(path, jsonl(records));
    const seen: string[] = [];
    await replayLedger(path, [
      { start: (record) => seen.push(`a:start:${record.worker}`) },
      recorder(seen, 'b:'),
    ]);
    const start = seen.indexOf('a:start:local-1');
    expect(seen[start + 1]).toBe('b:start');
    expect(seen.filter((s) => s.startsWith('a:'))).toEqual(['a:start:local-1']);
    expect(seen.filter((s) => s.startsWith('b:'))).toHaveLength(records.length);
  });

  it('skips a torn last line and a stray one, and tells which', async () => {
    const path = join(dir, 'ledger.jsonl');
    writeFileSync(path, jsonl(records.slice(0, 2)));
    appendFileSync(path, '{"type":"nonsense"}\n');
    appendFileSync(path, jsonl(records.slice(2, 3)));
    appendFileSync(path, '{"type":"end","task":"bbbbbbbbbbbb'); // the tasker died mid-write
    const seen: string[] = [];
    const skipped: number[] = [];
    const { records: count } = await replayLedger(path, recorder(seen), (line) =>
      skipped.push(line),
    );
    expect(seen).toEqual(['run', 'plan', 'phase']);
    expect(count).toBe(3);
    expect(skipped).toEqual([3, 5]);
  });

  it('reads a run with no ledger yet as an empty one', async () => {
    const seen: string[] = [];
    expect(await replayLedger(join(dir, 'none.jsonl'), recorder(seen))).toEqual({ records: 0 });
    expect(seen).toEqual([]);
  });
});
