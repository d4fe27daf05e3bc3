import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LedgerRecord } from '../../tasker/ledger/ledger.js';

/** Every record of a run's ledger. */
export function ledgerOf(stateDir: string, run: string): LedgerRecord[] {
  return readFileSync(join(stateDir, 'runs', run, 'ledger.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as LedgerRecord);
}

/** The `end` records of a ledger. */
export const endsOf = (records: LedgerRecord[]) =>
  records.filter(
    (record): record is Extract<LedgerRecord, { type: 'end' }> => record.type === 'end',
  );
