import { replayLedger } from './replay.js';
import { TaskState, TaskTable } from './taskTable.js';

/**
 * What a run knows about its tasks: what its ledger says (the highest attempt number seen,
 * whether an attempt succeeded, which attempt is out on the broker with no outcome yet), and,
 * in the same table, what this session's phases do with them.
 */
export class RunMemory {
  /** One row per task of the run; the dispatcher's phases keep their bookkeeping here too. */
  readonly tasks = new TaskTable();
  /** Tasks spawned in each phase, in order: `[id, command]`. */
  private readonly spawns = new Map<string, [string, string][]>();
  /** How many tasks were spawned in the run. */
  spawnedCount = 0;
  /** Per phase, how many attempts ended in earlier sessions and how long they took in all (ms). */
  private readonly timings = new Map<string, { count: number; ms: number }>();

  /** An attempt of `phase` took `ms` (an earlier session's record). */
  timed(phase: string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    const timing = this.timings.get(phase) ?? { count: 0, ms: 0 };
    timing.count++;
    timing.ms += ms;
    this.timings.set(phase, timing);
  }

  /** How long `phase`'s attempts took on average in earlier sessions, and how many there were. */
  timing(phase: string): { readonly count: number; readonly meanMs: number } | undefined {
    const timing = this.timings.get(phase);
    return timing ? { count: timing.count, meanMs: timing.ms / timing.count } : undefined;
  }

  /** Whether any attempt is out on the broker with no outcome (only ever after a resume). */
  get anyPending(): boolean {
    return this.tasks.count(TaskState.PENDING) > 0;
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
    const slot = this.tasks.find(id);
    return slot >= 0 && this.tasks.state(slot) === TaskState.SUCCEEDED;
  }

  /** The highest attempt number recorded or published (0 for a task never tried). */
  attempts(id: string): number {
    const slot = this.tasks.find(id);
    return slot < 0 ? 0 : this.tasks.attempt(slot);
  }

  /** The attempt an earlier session published with no outcome recorded yet, or 0. */
  pending(id: string): number {
    const slot = this.tasks.find(id);
    return slot >= 0 && this.tasks.state(slot) === TaskState.PENDING ? this.tasks.attempt(slot) : 0;
  }

  // The three below replay records that no phase of this session made (an earlier session's,
  // a result `tasker collect` would take): they leave a row a phase has in flight alone.

  /** The broker holds `attempt`: it is out until its outcome is recorded. */
  queued(id: string, attempt: number, sizeClass = 0): void {
    const slot = this.tasks.add(id);
    const state = this.tasks.state(slot);
    const last = this.tasks.attempt(slot);
    if (state === TaskState.IN_FLIGHT) return;
    if (attempt >= last) this.tasks.setSizeClass(slot, sizeClass);
    if (state === TaskState.SUCCEEDED) this.tasks.set(slot, state, Math.max(last, attempt));
    else if (attempt >= last) this.tasks.set(slot, TaskState.PENDING, attempt);
    // else an older attempt's late confirm: the newer attempt superseded it.
  }

  /** A worker started `attempt`. */
  started(id: string, attempt: number): void {
    const slot = this.tasks.add(id);
    const state = this.tasks.state(slot);
    if (state === TaskState.NEW) this.tasks.set(slot, TaskState.TRIED, attempt);
    else if (state !== TaskState.IN_FLIGHT && attempt > this.tasks.attempt(slot))
      this.tasks.set(slot, state, attempt);
  }

  /** `attempt` ended: succeeded, or not (failed, cancelled). */
  ended(id: string, attempt: number, succeeded: boolean, sizeClass?: number): void {
    const slot = this.tasks.add(id);
    const state = this.tasks.state(slot);
    const last = this.tasks.attempt(slot);
    if (state === TaskState.IN_FLIGHT) return;
    // A task runs again on the class its latest attempt ran on: it needed that much.
    if (sizeClass !== undefined && attempt >= last) this.tasks.setSizeClass(slot, sizeClass);
    const highest = Math.max(last, attempt);
    // An attempt that did not succeed changes nothing for a task that did, or whose newer
    // attempt is out.
    const keep =
      !succeeded &&
      (state === TaskState.SUCCEEDED || (state === TaskState.PENDING && attempt < last));
    if (succeeded) this.tasks.set(slot, TaskState.SUCCEEDED, highest);
    else this.tasks.set(slot, keep ? state : TaskState.TRIED, highest);
  }
}

/**
 * Reads a run's ledger into a RunMemory; `records` is 0 for a new run, `cancelledAt` is when
 * `tasker cancel` ended it, if it did.
 */
export async function loadRunMemory(
  ledgerPath: string,
  classes: readonly string[] = [],
): Promise<{ memory: RunMemory; records: number; cancelledAt: string | undefined }> {
  const memory = new RunMemory();
  let cancelledAt: string | undefined;
  // A class this session does not list counts as the first: the task starts over from there.
  const classOf = (name: string | undefined) =>
    name === undefined ? 0 : Math.max(0, classes.indexOf(name));
  const { records } = await replayLedger(ledgerPath, {
    queued: (record) => {
      const index = classOf(record.class);
      for (const [id, attempt] of record.tasks) memory.queued(id, attempt, index);
    },
    start: (record) => memory.started(record.task, record.attempt),
    end: (record) => {
      memory.ended(
        record.task,
        record.attempt,
        record.state === 'succeeded',
        classOf(record.class),
      );
      memory.timed(record.phase, Date.parse(record.finishedAt) - Date.parse(record.startedAt));
    },
    cancel: (record) => {
      cancelledAt ??= record.at;
    },
    spawn: (record) => memory.spawned(record.phase, record.tasks),
  });
  return { memory, records, cancelledAt };
}
