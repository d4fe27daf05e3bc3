import { IdMap } from '../../shared/idMap.js';

/**
 * Where a task stands in its run. The first four come from the ledger (what earlier sessions,
 * or `tasker collect`, recorded); a phase of this session moves its tasks to `IN_FLIGHT` and
 * from there back to `TRIED` or on to `SUCCEEDED`.
 */
export const TaskState = {
  /** Never tried in this run. */
  NEW: 0,
  /** Tried; no attempt succeeded and none is out (failed, cancelled, or left by an interrupt). */
  TRIED: 1,
  /** Published by an earlier session, with no outcome recorded yet: its result may still come. */
  PENDING: 2,
  /** A phase of this session waits for attempt `attempt`: out, or waiting for its retry. */
  IN_FLIGHT: 3,
  /** An attempt succeeded: the task never runs again in this run. */
  SUCCEEDED: 4,
} as const;
export type TaskState = (typeof TaskState)[keyof typeof TaskState];

const STATES = 5;

// Columns. STATE holds the state in its low 4 bits, the size class of the task's latest attempt
// (an index into the run's --classes) in the next 4, how often the task's message vanished from
// the broker in the 4 after, and the first attempt of this session above them: one column less
// is 4 MB less for a run of a million tasks. SEEN and QUEUED are the running phase's accounting
// of where each task is (see tasker/dispatch/accounting.ts).
const ATTEMPT = 0;
const STATE = 1;
const OFFSET = 2;
const LENGTH = 3;
const SEEN = 4;
const QUEUED = 5;
const STATE_MASK = 0xf;
const CLASS_SHIFT = 4;
const CLASS_MASK = 0xf << CLASS_SHIFT;
const STATE_BITS = 8;
const VANISHED_BITS = 4;
const VANISHED_MASK = ((1 << VANISHED_BITS) - 1) << STATE_BITS;
const FIRST_SHIFT = STATE_BITS + VANISHED_BITS;

/** How often a task's message may vanish from the broker, at most, counted in the table. */
export const MAX_VANISHED = (1 << VANISHED_BITS) - 1;

/**
 * The run's tasks, one row each: their state, attempt numbers and where their command is. One
 * table serves the run's memory of its ledger (resume: what succeeded, which attempt is out)
 * and the running phase's bookkeeping (what the barrier waits for), so each task id is held
 * once, in an IdMap: a run of a million tasks fits in about 50 MB.
 *
 * Rows are addressed by slot for speed. Slots move when the table grows: look a task up again
 * after adding another.
 */
export class TaskTable {
  private readonly rows = new IdMap(6);
  /** Rows in each state, NEW left out (a row is NEW when added). */
  private readonly counts = new Array<number>(STATES).fill(0);

  /** The slot of `id`, or -1 when the run knows nothing of it. */
  find(id: string): number {
    return this.rows.find(id);
  }

  /** The slot of `id`, added (`NEW`, attempt 0) when the run knows nothing of it. */
  add(id: string): number {
    return this.rows.upsert(id);
  }

  /** The task id of a slot. */
  idOf(slot: number): string {
    return this.rows.idAt(slot);
  }

  state(slot: number): TaskState {
    return (this.rows.get(slot, STATE) & STATE_MASK) as TaskState;
  }

  /**
   * The attempt the state is about: the one out (`PENDING`, `IN_FLIGHT`), else the highest
   * recorded (0 for a task never tried).
   */
  attempt(slot: number): number {
    return this.rows.get(slot, ATTEMPT);
  }

  /** The first attempt of this session (retries are counted from it), 0 if it has not run one. */
  first(slot: number): number {
    return this.rows.get(slot, STATE) >>> FIRST_SHIFT;
  }

  /** How often the task's message vanished from the broker in this session (see `vanish`). */
  vanished(slot: number): number {
    return (this.rows.get(slot, STATE) & VANISHED_MASK) >>> STATE_BITS;
  }

  /**
   * The awaited attempt's message vanished from the broker (a queue purged or deleted): the
   * next attempt is awaited instead, and the first attempt of this session moves with it, so
   * the vanished one uses up none of the task's retries.
   */
  vanish(slot: number): void {
    const low = this.rows.get(slot, STATE) & (STATE_MASK | CLASS_MASK);
    const vanished = Math.min(this.vanished(slot) + 1, MAX_VANISHED);
    this.rows.set(slot, ATTEMPT, this.attempt(slot) + 1);
    this.rows.set(
      slot,
      STATE,
      low | (vanished << STATE_BITS) | ((this.first(slot) + 1) << FIRST_SHIFT),
    );
  }

  /**
   * The size class (an index into the run's classes, 0 for `default`) of the task's latest
   * attempt: the one out, or the last recorded.
   */
  sizeClass(slot: number): number {
    return (this.rows.get(slot, STATE) & CLASS_MASK) >>> CLASS_SHIFT;
  }

  /** Sets the size class of the task's latest attempt (0 to 15). */
  setSizeClass(slot: number, index: number): void {
    const value = this.rows.get(slot, STATE) & ~CLASS_MASK;
    this.rows.set(slot, STATE, (value | ((index & 0xf) << CLASS_SHIFT)) >>> 0);
  }

  /**
   * The OOM killer killed the awaited attempt: the next attempt is awaited instead, on size
   * class `index`, and the first attempt of this session moves with it (as `vanish` does), so
   * the move uses up none of the task's retries.
   */
  moveUp(slot: number, index: number): void {
    const value = this.rows.get(slot, STATE);
    const low = value & (STATE_MASK | VANISHED_MASK);
    this.rows.set(slot, ATTEMPT, this.attempt(slot) + 1);
    this.rows.set(
      slot,
      STATE,
      (low | ((index & 0xf) << CLASS_SHIFT) | ((this.first(slot) + 1) << FIRST_SHIFT)) >>> 0,
    );
  }

  /**
   * When the running phase last knew where the task's attempt is (queued on the broker, held
   * or running on a worker), in ds since `clock`'s start; 0 for never.
   */
  seen(slot: number): number {
    return this.rows.get(slot, SEEN);
  }

  markSeen(slot: number, at: number): void {
    this.rows.set(slot, SEEN, at);
  }

  /** The order in which the broker confirmed the task's attempt (1, 2, ...); 0: not confirmed. */
  queuedOrder(slot: number): number {
    return this.rows.get(slot, QUEUED);
  }

  markQueued(slot: number, order: number): void {
    this.rows.set(slot, QUEUED, order);
  }

  /** Where the task's command is: a byte offset in its phase file (see `length`). */
  offset(slot: number): number {
    return this.rows.get(slot, OFFSET);
  }

  /** The byte length of the task's line in its phase file (the phase may use other values). */
  length(slot: number): number {
    return this.rows.get(slot, LENGTH);
  }

  /** The slots of the tasks in `state`, in table order (a scan of the whole table). */
  slotsIn(state: TaskState): number[] {
    return this.rows.slotsWhere(STATE, STATE_MASK, state);
  }

  /** How many tasks are in `state` (not counting `NEW`). */
  count(state: TaskState): number {
    return this.counts[state] ?? 0;
  }

  /** Records the state of a task and the attempt it is about. */
  set(slot: number, state: TaskState, attempt: number): void {
    this.rows.set(slot, ATTEMPT, attempt);
    this.setState(slot, state, this.first(slot));
  }

  /**
   * A phase of this session takes the task: from now on it waits for `attempt`, its first of
   * this session, whose command is at `offset`/`length`.
   */
  take(slot: number, attempt: number, offset: number, length: number): void {
    this.rows.set(slot, ATTEMPT, attempt);
    this.rows.set(slot, OFFSET, offset);
    this.rows.set(slot, LENGTH, length);
    this.rows.set(slot, SEEN, 0);
    this.rows.set(slot, QUEUED, 0);
    this.setState(slot, TaskState.IN_FLIGHT, attempt);
  }

  private setState(slot: number, state: TaskState, first: number): void {
    const before = this.state(slot);
    if (before !== TaskState.NEW) this.counts[before] = (this.counts[before] ?? 0) - 1;
    if (state !== TaskState.NEW) this.counts[state] = (this.counts[state] ?? 0) + 1;
    const kept = this.rows.get(slot, STATE) & (VANISHED_MASK | CLASS_MASK);
    this.rows.set(slot, STATE, state | kept | (first << FIRST_SHIFT));
  }
}
