import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { IdMap } from '../../shared/idMap.js';
import type { Logger } from '../../shared/logger.js';
import { statePaths } from '../../shared/statePaths.js';
import { commandKey } from '../../shared/taskId.js';
import { readDurationCache, writeDurationCache } from './durationCache.js';

// Columns of the index: the duration in ms, and when it ended (seconds since the epoch; 0: none).
const MS = 0;
const AT = 1;
const MAX_MS = 0xffffffff;

/** How a load went, for the log and for the bench. */
export interface HistoryLoad {
  /** Runs whose ledgers were read (in part, past what the cache had). */
  readonly read: number;
  /** Bytes of ledger read. */
  readonly bytes: number;
  /** The cache did not fit the ledgers (missing, a ledger gone or shorter): built anew. */
  readonly rebuilt: boolean;
  readonly ms: number;
}

/**
 * How long each command took the last time it succeeded in a run of the state dir, by its
 * content key (`commandKey`: the command text, whatever its run or phase). Built from the
 * ledgers' succeeded `end` records, and kept in `history/durations.bin`, which says how far
 * into each ledger it has read: a load reads only what ledgers gained since, so a state dir of
 * big runs is read once. Copies of other state dirs' ledgers fetched from S3 (`history/s3/`,
 * s3Ledgers.ts) count as runs of the state dir. In typed arrays (an IdMap): a million commands
 * take some 20 MB.
 */
export class DurationHistory {
  private constructor(
    private readonly index: IdMap,
    /** Bytes of each run's ledger folded in, by run id. */
    private readonly ledgers: Map<string, number>,
  ) {}

  /** A history that knows nothing (`--order file` with nothing to estimate, tests). */
  static empty(): DurationHistory {
    return new DurationHistory(new IdMap(2), new Map());
  }

  /** Commands with a known duration. */
  get size(): number {
    return this.index.size;
  }

  /** How long `command` took the last time it succeeded, in ms; undefined if it never did. */
  expectedMs(command: string): number | undefined {
    if (this.index.size === 0) return undefined;
    const slot = this.index.find(commandKey(command));
    return slot < 0 ? undefined : this.index.get(slot, MS);
  }

  /**
   * The state dir's history, brought up to date with its ledgers (and saved, when it changed
   * and the state dir is writable). With `update: false` only the saved index is read, as it
   * was when a tasker last brought it up to date: `tasker status` reads it each second and
   * writes nothing.
   */
  static async load(
    stateDir: string,
    options: { readonly update?: boolean; readonly log?: Logger } = {},
  ): Promise<{ history: DurationHistory; load: HistoryLoad }> {
    const started = Date.now();
    const path = statePaths.durations(stateDir);
    const cached = readDurationCache(path);
    const history = cached
      ? new DurationHistory(cached.index, cached.ledgers)
      : DurationHistory.empty();
    if (options.update === false) {
      return { history, load: { read: 0, bytes: 0, rebuilt: false, ms: Date.now() - started } };
    }
    const ledgers = ledgersIn(stateDir);
    // A ledger gone or shorter than what was read of it (a run deleted, a state dir restored):
    // what the index holds from it cannot be told apart, so it is built again from what is there.
    const stale =
      !cached || [...history.ledgers].some(([run, read]) => (ledgers.get(run)?.size ?? -1) < read);
    const fresh = stale ? DurationHistory.empty() : history;
    let read = 0;
    let bytes = 0;
    for (const [run, { path: ledger, size }] of ledgers) {
      const from = fresh.ledgers.get(run) ?? 0;
      if (size <= from) continue;
      const upTo = await fresh.fold(ledger, from, size);
      fresh.ledgers.set(run, upTo);
      read++;
      bytes += upTo - from;
    }
    if (stale || read > 0) {
      try {
        writeDurationCache(path, fresh.index, fresh.ledgers);
      } catch (error) {
        // A state dir this process cannot write (a read-only mount): the index is rebuilt next
        // time, nothing else is lost.
        options.log?.debug({ err: error }, `cannot save the duration history \`${path}\``);
      }
    }
    return {
      history: fresh,
      load: { read, bytes, rebuilt: stale, ms: Date.now() - started },
    };
  }

  /** Folds in the succeeded attempts of `ledger` from byte `from`; returns where it stopped. */
  private async fold(ledger: string, from: number, to: number): Promise<number> {
    let consumed = from;
    let rest: Buffer = Buffer.alloc(0);
    try {
      for await (const chunk of createReadStream(ledger, { start: from, end: to - 1 })) {
        const data = rest.length > 0 ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
        let start = 0;
        for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10, start)) {
          this.line(data.toString('utf8', start, nl));
          start = nl + 1;
        }
        consumed += start;
        rest = data.subarray(start);
      }
    } catch (error) {
      // Read as far as it could be: the rest is read next time.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    // A last line with no line break yet (the tasker is writing it) is read next time.
    return consumed;
  }

  private line(line: string): void {
    // Most lines are not succeeded ends: tell them by their text before parsing any.
    if (!line.includes('"type":"end"') || !line.includes('"state":"succeeded"')) return;
    let record: {
      type?: unknown;
      state?: unknown;
      command?: unknown;
      startedAt?: unknown;
      finishedAt?: unknown;
    };
    try {
      record = JSON.parse(line) as typeof record;
    } catch {
      return; // a torn line
    }
    if (record.type !== 'end' || record.state !== 'succeeded') return;
    if (typeof record.command !== 'string' || record.command === '') return;
    const finished = Date.parse(String(record.finishedAt));
    const ms = finished - Date.parse(String(record.startedAt));
    if (!Number.isFinite(ms) || ms < 0) return;
    this.took(record.command, ms, finished);
  }

  /** `command` succeeded in `ms`, ending at `finishedAt` (ms since the epoch): the latest wins. */
  private took(command: string, ms: number, finishedAt: number): void {
    const slot = this.index.upsert(commandKey(command));
    const at = Math.max(1, Math.floor(finishedAt / 1000));
    if (this.index.get(slot, AT) > at) return;
    this.index.set(slot, MS, Math.min(MAX_MS, Math.round(ms)));
    this.index.set(slot, AT, at);
  }
}

/** Names in `dir`, sorted; none when it is not there. */
function namesIn(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/**
 * The ledgers of the state dir's runs, by run id, with their sizes now; then the copies of other
 * state dirs' ledgers fetched from S3 (s3Ledgers.ts), for runs the state dir does not have.
 */
function ledgersIn(stateDir: string): Map<string, { path: string; size: number }> {
  const found = new Map<string, { path: string; size: number }>();
  for (const run of namesIn(join(stateDir, 'runs'))) {
    const path = statePaths.ledger(stateDir, run);
    try {
      found.set(run, { path, size: statSync(path).size });
    } catch {
      // A run directory with no ledger (being made, or its plan was refused).
    }
  }
  const fetched = statePaths.s3Ledgers(stateDir);
  for (const name of namesIn(fetched)) {
    // `.<run>.jsonl.<pid>.partial` is a download under way.
    if (!name.endsWith('.jsonl') || name.startsWith('.')) continue;
    const run = name.slice(0, -'.jsonl'.length);
    if (found.has(run)) continue;
    const path = join(fetched, name);
    try {
      found.set(run, { path, size: statSync(path).size });
    } catch {
      // replaced while we looked: read next time
    }
  }
  return found;
}
