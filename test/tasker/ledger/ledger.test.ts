import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type LedgerRecord, LedgerWriter, readLedger } from '../../../tasker/ledger/ledger.js';
import { loadRunMemory } from '../../../tasker/ledger/runMemory.js';
import { eachTempDir } from '../../helpers/cli.js';

let dir: string;
eachTempDir((made) => (dir = made));

const at = '2026-11-21T00:00:00.000Z';
const end = (task: string, attempt: number, state: 'succeeded' | 'failed'): LedgerRecord => ({
  type: 'end',
  at,
  task,
  phase: 'p',
  command: 'true',
  attempt,
  state,
  final: state === 'succeeded',
  failure: state === 'failed' ? 'exit' : null,
  reason: state === 'failed' ? 'exit 1' : null,
  worker: 'local-1',
  host: 'h',
  startedAt: at,
  finishedAt: at,
  exitCode: state === 'failed' ? 1 : 0,
  signal: null,
  errorTail: '',
  logs: null,
});

describe('the ledger', () => {
  it('is JSON lines, one record each, readable back in order', async () => {
    const path = join(dir, 'runs', 'r', 'ledger.jsonl');
    const ledger = LedgerWriter.open(path);
    ledger.append({ type: 'phase', at, phase: 'p', kind: 'parallel', total: 2 });
    ledger.append(end('aaaaaaaaaaaaaaaa', 1, 'failed'));
    await ledger.flushed();
    expect(readFileSync(path, 'utf8').split('\n')).toHaveLength(3);
    ledger.append(end('aaaaaaaaaaaaaaaa', 2, 'succeeded'));
    ledger.close();
    const records: LedgerRecord[] = [];
    for await (const record of readLedger(path)) records.push(record);
    expect(records.map((record) => record.type)).toEqual(['phase', 'end', 'end']);
  });

  it('survives a torn last line: it is skipped on reading and the next record starts fresh', async () => {
    const path = join(dir, 'ledger.jsonl');
    const first = LedgerWriter.open(path);
    first.append(end('aaaaaaaaaaaaaaaa', 1, 'succeeded'));
    first.close();
    appendFileSync(path, '{"type":"end","task":"bbbbbbbbbbbb'); // the tasker died mid-write
    const second = LedgerWriter.open(path);
    second.append(end('cccccccccccccccc', 1, 'succeeded'));
    second.close();
    const skipped: number[] = [];
    const tasks: string[] = [];
    for await (const record of readLedger(path, (line) => skipped.push(line))) {
      if (record.type === 'end') tasks.push(record.task);
    }
    expect(tasks).toEqual(['aaaaaaaaaaaaaaaa', 'cccccccccccccccc']);
    expect(skipped).toEqual([2]);
  });

  it('tells a resumed run what already succeeded and where attempt numbers stand', async () => {
    const path = join(dir, 'ledger.jsonl');
    const ledger = LedgerWriter.open(path);
    ledger.append(end('aaaaaaaaaaaaaaaa', 1, 'failed'));
    ledger.append(end('aaaaaaaaaaaaaaaa', 2, 'succeeded'));
    ledger.append(end('bbbbbbbbbbbbbbbb', 1, 'failed'));
    ledger.append({
      type: 'start',
      at,
      task: 'cccccccccccccccc',
      phase: 'p',
      attempt: 1,
      worker: 'local-1',
    });
    ledger.append({
      type: 'queued',
      at,
      phase: 'p',
      tasks: [
        ['bbbbbbbbbbbbbbbb', 2],
        ['eeeeeeeeeeeeeeee', 1],
      ],
    });
    ledger.close();
    const { memory } = await loadRunMemory(path);
    const ids = [
      'aaaaaaaaaaaaaaaa',
      'bbbbbbbbbbbbbbbb',
      'cccccccccccccccc',
      'dddddddddddddddd',
      'eeeeeeeeeeeeeeee',
    ];
    expect(ids.map((id) => memory.succeeded(id))).toEqual([true, false, false, false, false]);
    expect(ids.map((id) => memory.attempts(id))).toEqual([2, 2, 1, 0, 1]);
    // Published attempts with no outcome yet are waited for, not published again.
    expect(ids.map((id) => memory.pending(id))).toEqual([0, 2, 0, 0, 1]);
  });
});
