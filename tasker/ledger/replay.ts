import { readLedger } from './ledger.js';
import type { LedgerRecord, RecordOf, RecordType } from './records.js';

/**
 * What a reader of the ledger does with each type of record: one handler per type it cares
 * about (the handler for `end` gets an EndRecord), none for the others.
 */
export type LedgerVisitor = {
  readonly [T in RecordType]?: (record: RecordOf<T>) => void;
};

/** How a replay went. */
export interface Replayed {
  /** Records read (0 for a run with no ledger yet). */
  readonly records: number;
}

/**
 * Reads a run's ledger once, in order, and hands each record to the handler for its type of
 * each visitor, in the order the visitors are given: several readers share one pass over a
 * ledger of millions of lines. As `readLedger` does, a missing ledger is an empty one and a
 * line that does not parse (a torn last line) is skipped and told to `onSkip`.
 */
export async function replayLedger(
  path: string,
  visitors: LedgerVisitor | readonly LedgerVisitor[],
  onSkip?: (line: number) => void,
): Promise<Replayed> {
  const all: readonly LedgerVisitor[] = Array.isArray(visitors) ? visitors : [visitors];
  let records = 0;
  for await (const record of readLedger(path, onSkip)) {
    records++;
    for (const visitor of all) {
      // The mapped type pairs each type with its handler; TypeScript cannot follow the pairing
      // through an index by a union, hence the cast.
      (visitor[record.type] as ((record: LedgerRecord) => void) | undefined)?.(record);
    }
  }
  return { records };
}
