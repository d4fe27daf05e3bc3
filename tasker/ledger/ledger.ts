import {
  closeSync,
  createReadStream,
  fdatasyncSync,
  fstatSync,
  openSync,
  readSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import split2 from 'split2';
import { makeDirs } from '../../shared/dirs.js';
import { describeSystemError, InfraError } from '../../shared/errors.js';
import { type LedgerRecord, RECORD_TYPES } from './records.js';

// The record types are in records.ts; they are here too for the ledger's writers and readers.
export type {
  CancelRecord,
  EndRecord,
  LedgerRecord,
  OrderRecord,
  PhaseEndRecord,
  PhaseRecord,
  PlanRecord,
  QueuedRecord,
  RunEndRecord,
  RunRecord,
  SpawnRecord,
  StartRecord,
} from './records.js';
export { LEDGER_VERSION } from './records.js';

/**
 * The append-only JSONL ledger of one run. Only the tasker writes it. Records are written in
 * batches, once per turn of the event loop, each batch one write(2) of whole lines; `flushed`
 * resolves once a record is in the file (where it survives the tasker being killed), and
 * `sync` also forces it to disk. No SQLite: this file lives on a shared (often NFS) volume.
 */
export class LedgerWriter {
  private pending: string[] = [];
  private waiting: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  private scheduled = false;
  private failure: InfraError | undefined;

  private constructor(
    readonly path: string,
    private fd: number | undefined,
  ) {}

  static open(path: string): LedgerWriter {
    try {
      makeDirs(dirname(path));
      const fd = openSync(path, 'a+');
      const { size } = fstatSync(fd);
      if (size > 0) {
        // A tasker killed mid-write can leave a torn last line: start ours on a fresh one.
        const last = Buffer.alloc(1);
        readSync(fd, last, 0, 1, size - 1);
        if (last[0] !== 0x0a) writeSync(fd, '\n');
      }
      return new LedgerWriter(path, fd);
    } catch (error) {
      throw new InfraError(
        'LEDGER_UNWRITABLE',
        `cannot open ledger \`${path}\`: ${describeSystemError(error)}`,
        {
          cause: error,
        },
      );
    }
  }

  append(record: LedgerRecord): void {
    if (this.failure) throw this.failure;
    if (this.fd === undefined) throw new Error(`ledger \`${this.path}\` is closed`);
    this.pending.push(`${JSON.stringify(record)}\n`);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        try {
          this.flush();
        } catch {
          // Kept in `failure`: the next append, sync or close throws it.
        }
      });
    }
  }

  /** Resolves once everything appended so far is in the file; rejects if it cannot be. */
  flushed(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Writes what is pending now. */
  flush(): void {
    this.scheduled = false;
    if (this.failure) throw this.failure;
    if (this.pending.length === 0 || this.fd === undefined) return;
    const batch = Buffer.from(this.pending.join(''));
    this.pending = [];
    const waiting = this.waiting;
    this.waiting = [];
    try {
      // write(2) may write less than asked (it happens on NFS): go on until all is written.
      for (let written = 0; written < batch.length; ) written += writeSync(this.fd, batch, written);
    } catch (error) {
      this.failure = new InfraError(
        'LEDGER_UNWRITABLE',
        `cannot write ledger \`${this.path}\`: ${describeSystemError(error)}`,
        { cause: error },
      );
      for (const { reject } of waiting) reject(this.failure);
      throw this.failure;
    }
    for (const { resolve } of waiting) resolve();
  }

  /** Writes what is pending and forces it to disk. */
  sync(): void {
    this.flush();
    if (this.fd !== undefined) fdatasyncSync(this.fd);
  }

  close(): void {
    if (this.fd === undefined) return;
    this.sync();
    closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Reads a ledger record by record without loading it whole. A line that does not parse (a
 * torn last line) is skipped; `onSkip` hears about it.
 */
export async function* readLedger(
  path: string,
  onSkip?: (line: number) => void,
): AsyncGenerator<LedgerRecord> {
  const source = createReadStream(path);
  const stream = source.pipe(split2());
  source.on('error', (error) => stream.destroy(error));
  let number = 0;
  try {
    for await (const line of stream as AsyncIterable<string>) {
      number++;
      if (line === '') continue;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch {
        onSkip?.(number);
        continue;
      }
      if (
        typeof record === 'object' &&
        record !== null &&
        RECORD_TYPES.has((record as { type: string }).type)
      ) {
        yield record as LedgerRecord;
      } else {
        onSkip?.(number);
      }
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new InfraError(
      'LEDGER_UNREADABLE',
      `cannot read ledger \`${path}\`: ${describeSystemError(error)}`,
      {
        cause: error,
      },
    );
  }
}
