import { type PhasePlan, readSpool, type SpooledTask, SpoolReader } from '../jobs/index.js';
import { TaskState, type TaskTable } from '../ledger/index.js';
import type { OrderedTask, PhaseOrder } from './publishOrder.js';
import { type PhaseSpawns, SPAWNED } from './spawns.js';

/**
 * A phase's rows of the run's task table, and where their commands are: a line of the phase
 * file (read back by offset, so a million tasks in flight hold no commands in memory), or a
 * spawned command.
 */
export class PhaseTasks {
  private readonly spool: SpoolReader;

  constructor(
    private readonly phase: PhasePlan,
    readonly table: TaskTable,
    readonly spawned: PhaseSpawns,
  ) {
    this.spool = new SpoolReader(phase.spool);
  }

  /**
   * The phase's planned tasks, from its phase file, then those spawned in an earlier session;
   * of a rerun, only those it runs again.
   */
  async *all(): AsyncGenerator<SpooledTask> {
    const only = this.phase.only;
    for await (const task of readSpool(this.phase.spool))
      if (!only || only.has(task.id)) yield task;
    for (const task of this.spawned.earlier()) if (!only || only.has(task.id)) yield task;
  }

  /**
   * The phase's tasks as they are published: the phase file's in `order`, then those spawned in
   * an earlier session (in the order they were spawned).
   */
  async *inOrder(order: PhaseOrder): AsyncGenerator<OrderedTask> {
    // A rerun's phase publishes only the tasks it reruns (and what they spawn).
    const only = this.phase.only;
    for await (const task of order.tasks()) if (!only || only.has(task.id)) yield task;
    for (const task of this.spawned.earlier())
      if (!only || only.has(task.id)) yield { ...task, expectedMs: undefined };
  }

  /**
   * Takes the attempts an earlier session published that have no outcome yet: they are still
   * out there, so the phase waits for their results instead of publishing them again. Returns
   * how many it took. `adopted` hears of each row as it is taken.
   */
  async adoptPending(adopted?: (slot: number) => void): Promise<number> {
    const table = this.table;
    let count = 0;
    for await (const task of this.all()) {
      const slot = table.find(task.id);
      if (slot < 0 || table.state(slot) !== TaskState.PENDING) continue;
      table.take(slot, table.attempt(slot), task.offset, task.length);
      adopted?.(slot);
      count++;
    }
    return count;
  }

  /** Takes a task just spawned: its first attempt is out. */
  takeSpawned(id: string, command: string): void {
    this.table.take(this.table.add(id), 1, this.spawned.add(command), SPAWNED);
  }

  /** The slot of task `id` if the phase waits for its `attempt`, else -1. */
  awaiting(id: string, attempt: number): number {
    const slot = this.table.find(id);
    if (slot < 0 || this.table.state(slot) !== TaskState.IN_FLIGHT) return -1;
    return this.table.attempt(slot) === attempt ? slot : -1;
  }

  inFlight(id: string): boolean {
    const slot = this.table.find(id);
    return slot >= 0 && this.table.state(slot) === TaskState.IN_FLIGHT;
  }

  commandOf(slot: number): string {
    const offset = this.table.offset(slot);
    const length = this.table.length(slot);
    if (length === SPAWNED) return this.spawned.command(offset);
    return this.spool.command(offset, length);
  }

  /** Leaves a task unfinished, whose retry never went out; false if it was not in flight. */
  leave(id: string): boolean {
    const slot = this.table.find(id);
    if (slot < 0 || this.table.state(slot) !== TaskState.IN_FLIGHT) return false;
    this.table.set(slot, TaskState.TRIED, this.table.attempt(slot) - 1);
    return true;
  }

  close(): void {
    this.spool.close();
  }
}
