import { IdMap } from '../../shared/idMap.js';
import type { Logger } from '../../shared/logger.js';
import { taskId } from '../../shared/taskId.js';
import type { SpooledTask } from '../jobs/index.js';
import type { LedgerWriter, RunMemory } from '../ledger/index.js';

/**
 * The `length` a spawned task has in the task table: its command is held in memory, and its
 * `offset` is its index among the phase's spawned commands, not a place in the phase file.
 */
export const SPAWNED = 0xffffffff;

/**
 * The run's spawned tasks, for deduplication over the whole run (a command spawned once, in
 * any phase, is not spawned again) and for `--max-tasks`.
 */
export class SpawnBook {
  /** Phase-independent keys of every spawned command. */
  private readonly seen = new IdMap(0);
  private total: number;

  constructor(
    private readonly run: string,
    /** At most this many tasks in the run, planned and spawned together (`--max-tasks`). */
    readonly maxTasks: number | undefined,
    /** Tasks the run's phases plan, all phases together. */
    plannedTasks: number,
    memory: RunMemory,
  ) {
    this.total = plannedTasks + memory.spawnedCount;
    for (const [, command] of memory.allSpawned()) this.seen.upsert(this.key(command));
  }

  private key(command: string): string {
    return taskId(this.run, '', command);
  }

  /** Takes a command if it is new to the run and the run has room. */
  take(command: string): 'new' | 'seen' | 'full' {
    const key = this.key(command);
    if (this.seen.find(key) >= 0) return 'seen';
    if (this.maxTasks !== undefined && this.total >= this.maxTasks) return 'full';
    this.seen.upsert(key);
    this.total++;
    return 'new';
  }
}

/**
 * One phase's spawned tasks: those an earlier session of the run recorded, then those its
 * tasks spawn now. Holds their commands (a spawned task has no line in the phase file).
 */
export class PhaseSpawns {
  private readonly commands: string[] = [];
  /** Spawned commands dropped at `--max-tasks`. */
  private dropped = 0;
  /** How many of `commands` an earlier session spawned. */
  private readonly earlierCount: number;

  constructor(
    private readonly run: string,
    private readonly phase: string,
    private readonly book: SpawnBook,
    private readonly memory: RunMemory,
    private readonly ledger: LedgerWriter,
    private readonly log: Logger,
  ) {
    // Tasks spawned in this phase by an earlier session of the run come after the planned ones.
    for (const [, command] of memory.spawnedIn(phase)) this.commands.push(command);
    this.earlierCount = this.commands.length;
  }

  /** How many tasks were spawned in the phase, earlier sessions included. */
  get count(): number {
    return this.commands.length;
  }

  /** How many tasks were spawned in the phase in this session. */
  get fresh(): number {
    return this.commands.length - this.earlierCount;
  }

  /** The command of the spawned task at `index` (its `offset` in the task table). */
  command(index: number): string {
    return this.commands[index] as string;
  }

  /** The tasks an earlier session spawned in the phase, placed as the task table holds them. */
  *earlier(): Generator<SpooledTask> {
    for (const [index, [id, command]] of this.memory.spawnedIn(this.phase).entries())
      yield { id, command, offset: index, length: SPAWNED };
  }

  /**
   * Takes the commands task `by` spawned: new ones only (over the whole run), within
   * `--max-tasks`. Records them in the ledger before the result that brought them is
   * acknowledged, so a tasker killed now finds them on resume. Returns the new tasks
   * (`[id, command]`), for `add` if the phase runs them now.
   */
  take(by: string, spawned: readonly string[]): readonly (readonly [string, string])[] {
    const accepted: [string, string][] = [];
    const droppedBefore = this.dropped;
    for (const command of spawned) {
      // A task of this phase already (planned, or spawned before), or of the run.
      const id = taskId(this.run, this.phase, command);
      if (this.memory.attempts(id) > 0) continue;
      if (accepted.some(([other]) => other === id)) continue;
      const verdict = this.book.take(command);
      if (verdict === 'full') this.dropped++;
      if (verdict === 'new') accepted.push([id, command]);
    }
    if (droppedBefore === 0 && this.dropped > 0) {
      this.log.warn(
        { phase: this.phase },
        `--max-tasks ${this.book.maxTasks} reached: tasks spawned from now on are dropped`,
      );
    }
    if (accepted.length > 0) {
      this.ledger.append({
        type: 'spawn',
        at: new Date().toISOString(),
        phase: this.phase,
        by,
        tasks: accepted,
      });
    }
    return accepted;
  }

  /** Adds a spawned task's command to the phase; returns its `offset` for the task table. */
  add(command: string): number {
    return this.commands.push(command) - 1;
  }
}
