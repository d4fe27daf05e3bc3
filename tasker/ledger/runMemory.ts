import { IdMap } from '../../shared/idMap.js';
import { replayLedger } from './replay.js';

// One packed column: highest attempt (bits 0-11), pending attempt (12-23), succeeded (24).
const ATTEMPTS = 0xfff;
const PENDING_SHIFT = 12;
const SUCCEEDED = 1 << 24;

/**
 * What a run's ledger says about its tasks, in an IdMap so that a run of a million tasks
 * resumes in tens of megabytes: the highest attempt number seen, whether an attempt
 * succeeded, and which attempt is out on the broker with no outcome yet.
 */
export class RunMemory {
  private readonly tasks = new IdMap(1);
  /** Tasks spawned in each phase, in order: `[id, command]`. */
  private readonly spawns = new Map<string, [string, string][]>();
  /** How many tasks were spawned in the run. */
  spawnedCount = 0;
  /** How many tasks have an attempt out on the broker with no outcome recorded. */
  private pendingCount = 0;

  /** Whether any attempt is out on the broker with no outcome (only ever after a resume). */
  get anyPending(): boolean {
    return this.pendingCount > 0;
  }

  spawned(phase: string, tasks: readonly (readonly [string, string])[]): void {
    const list = this.spawns.get(phase) ?? [];
    for (const [id, command] of tasks) list.push([id, command]);
    this.spawns.set(phase, list);
    this.spawnedCount += tasks.length;
  }

  /** The tasks spawned in a phase by an earlier session of the run. */
  spawnedIn(phase: string): readonly (readonly [string, string])[] {
    return this.spawns.get(phase) ?? [];
  }

  /** Every spawned task of the run, for deduplication. */
  *allSpawned(): Generator<readonly [string, string]> {
    for (const list of this.spawns.values()) yield* list;
  }

  /** An attempt of this task succeeded: it never runs again in this run. */
  succeeded(id: string): boolean {
    return (this.tasks.value(id, 0) & SUCCEEDED) !== 0;
  }

  /** The highest attempt number recorded (0 for a task never tried). */
  attempts(id: string): number {
    return this.tasks.value(id, 0) & ATTEMPTS;
  }

  /** The attempt published to the broker with no outcome recorded yet, or 0. */
  pending(id: string): number {
    return (this.tasks.value(id, 0) >>> PENDING_SHIFT) & ATTEMPTS;
  }

  queued(id: string, attempt: number): void {
    this.update(id, (attempts, _pending, succeeded) => [
      Math.max(attempts, attempt),
      attempt,
      succeeded,
    ]);
  }

  started(id: string, attempt: number): void {
    this.update(id, (attempts, pending, succeeded) => [
      Math.max(attempts, attempt),
      pending,
      succeeded,
    ]);
  }

  ended(id: string, attempt: number, succeeded: boolean): void {
    this.update(id, (attempts, pending, done) => [
      Math.max(attempts, attempt),
      pending <= attempt ? 0 : pending,
      done || succeeded,
    ]);
  }

  private update(
    id: string,
    change: (attempts: number, pending: number, succeeded: boolean) => [number, number, boolean],
  ): void {
    const slot = this.tasks.upsert(id);
    const packed = this.tasks.get(slot, 0);
    const before = (packed >>> PENDING_SHIFT) & ATTEMPTS;
    const [attempts, pending, succeeded] = change(
      packed & ATTEMPTS,
      before,
      (packed & SUCCEEDED) !== 0,
    );
    if ((before === 0) !== ((pending & ATTEMPTS) === 0)) this.pendingCount += before === 0 ? 1 : -1;
    this.tasks.set(
      slot,
      0,
      (attempts & ATTEMPTS) | ((pending & ATTEMPTS) << PENDING_SHIFT) | (succeeded ? SUCCEEDED : 0),
    );
  }
}

/**
 * Reads a run's ledger into a RunMemory; `records` is 0 for a new run, `cancelledAt` is when
 * `tasker cancel` ended it, if it did.
 */
export async function loadRunMemory(
  ledgerPath: string,
): Promise<{ memory: RunMemory; records: number; cancelledAt: string | undefined }> {
  const memory = new RunMemory();
  let cancelledAt: string | undefined;
  const { records } = await replayLedger(ledgerPath, {
    queued: (record) => {
      for (const [id, attempt] of record.tasks) memory.queued(id, attempt);
    },
    start: (record) => memory.started(record.task, record.attempt),
    end: (record) => memory.ended(record.task, record.attempt, record.state === 'succeeded'),
    cancel: (record) => {
      cancelledAt ??= record.at;
    },
    spawn: (record) => memory.spawned(record.phase, record.tasks),
  });
  return { memory, records, cancelledAt };
}
