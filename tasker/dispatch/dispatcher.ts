import { formatDuration, MINUTE } from '../../shared/duration.js';
import { IdMap } from '../../shared/idMap.js';
import type { Logger } from '../../shared/logger.js';
import { PROTOCOL_VERSION, type TaskMessage, type TaskResult } from '../../shared/protocol.js';
import { taskId } from '../../shared/taskId.js';
import type { PhasePlan } from '../jobs/phasePlan.js';
import type { PhaseKind } from '../jobs/rules.js';
import { readSpool, type SpooledTask, SpoolReader } from '../jobs/spool.js';
import { endRecordOf } from '../ledger/endRecord.js';
import type { LedgerWriter } from '../ledger/ledger.js';
import type { RunMemory } from '../ledger/runMemory.js';
import type { Transport, TransportListener } from '../transports/transport.js';

export interface DispatchOptions {
  readonly run: string;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly timeoutMs: number;
  readonly keepGoing: boolean;
  /**
   * At most this many tasks in the run, planned and spawned together: spawned tasks past it
   * are dropped, with a warning (`--max-tasks`).
   */
  readonly maxTasks?: number;
  /** Tasks the run's phases plan, all phases together (for `maxTasks`). */
  readonly plannedTasks?: number;
  /** Globs of outputs each task uploads to S3 after it succeeds (`--upload`). */
  readonly upload?: readonly string[];
  /**
   * Return once the broker holds every task of a parallel phase, without waiting for results
   * (`tasker send --no-wait`); the results wait in the run's queue.
   */
  readonly noWait?: boolean;
}

/** A task that ended failed, for the summary. */
export interface FailedTask {
  readonly task: string;
  readonly phase: string;
  readonly command: string;
  readonly attempt: number;
  readonly reason: string;
  readonly errorTail: string;
}

export interface PhaseSummary {
  readonly name: string;
  readonly kind: PhaseKind;
  readonly total: number;
  readonly succeeded: number;
  readonly failed: number;
  /** Already succeeded in an earlier session of this run. */
  readonly skipped: number;
  /** True when the phase stopped before every task had a final outcome. */
  readonly interrupted: boolean;
  /** Up to `MAX_LISTED` failed tasks; `failed` has the count. */
  readonly failures: readonly FailedTask[];
  readonly elapsedMs: number;
}

/** Progress of the running phase, for a progress display. */
export interface PhaseProgress {
  readonly phase: string;
  readonly total: number;
  readonly done: number;
  readonly failed: number;
  readonly running: number;
}

const MAX_LISTED = 50;

// Columns of a phase's task table.
const OFFSET = 0;
const LENGTH = 1;
/** LENGTH of a spawned task, whose command is held in memory rather than in the phase file. */
const SPAWNED = 0xffffffff;
/** Attempt (bits 0-11), first attempt of this session (12-23) and state (24-25), packed. */
const PACKED = 2;
// States (0: not tracked).
const IN_FLIGHT = 1;
const FINAL = 2;
const LEFT = 3; // cancelled or abandoned by an interrupt: runs again on resume

/**
 * Runs phases through a transport: publishes each phase's tasks, retries failures with
 * backoff, records every attempt in the ledger, and returns only when every task of the phase
 * has a final outcome (the barrier counts distinct task ids, never queue lengths).
 */
export class Dispatcher {
  private interrupted = false;
  private current: PhaseRun | undefined;
  private readonly spawns: SpawnBook;

  constructor(
    private readonly ledger: LedgerWriter,
    private readonly memory: RunMemory,
    private readonly options: DispatchOptions,
    private readonly log: Logger,
    private readonly onProgress: (progress: PhaseProgress) => void = () => {},
  ) {
    this.spawns = new SpawnBook(options, memory);
  }

  /**
   * Stops the run: nothing more is submitted, running tasks are stopped (local) or left to
   * their workers (broker), and the current phase returns. What did not finish runs again when
   * the run is resumed.
   */
  async interrupt(): Promise<void> {
    this.interrupted = true;
    await this.current?.interrupt();
  }

  async runPhase(phase: PhasePlan, transport: Transport): Promise<PhaseSummary> {
    this.ledger.append({
      type: 'phase',
      at: new Date().toISOString(),
      phase: phase.name,
      kind: phase.kind,
      total: phase.total,
    });
    const run = new PhaseRun(
      phase,
      transport,
      this.ledger,
      this.memory,
      this.options,
      this.log,
      this.onProgress,
      this.spawns,
    );
    this.current = run;
    if (this.interrupted) await run.interrupt();
    try {
      const summary = await run.execute();
      this.ledger.append({
        type: 'phase-end',
        at: new Date().toISOString(),
        phase: phase.name,
        succeeded: summary.succeeded + summary.skipped,
        failed: summary.failed,
        interrupted: summary.interrupted,
      });
      this.ledger.sync();
      return summary;
    } finally {
      this.current = undefined;
      run.close();
    }
  }
}

/**
 * The run's spawned tasks, for deduplication over the whole run (a command spawned once, in
 * any phase, is not spawned again) and for `--max-tasks`.
 */
class SpawnBook {
  /** Phase-independent keys of every spawned command. */
  private readonly seen = new IdMap(0);
  private total: number;

  constructor(
    private readonly options: DispatchOptions,
    memory: RunMemory,
  ) {
    this.total = (options.plannedTasks ?? 0) + memory.spawnedCount;
    for (const [, command] of memory.allSpawned()) this.seen.upsert(this.key(command));
  }

  key(command: string): string {
    return taskId(this.options.run, '', command);
  }

  /** Takes a command if it is new to the run and the run has room; false otherwise. */
  take(command: string): 'new' | 'seen' | 'full' {
    const key = this.key(command);
    if (this.seen.find(key) >= 0) return 'seen';
    if (this.options.maxTasks !== undefined && this.total >= this.options.maxTasks) return 'full';
    this.seen.upsert(key);
    this.total++;
    return 'new';
  }
}

/** One phase's bookkeeping: what is in flight, what is final, when the barrier opens. */
class PhaseRun {
  private readonly tasks = new IdMap(3);
  private readonly spool: SpoolReader;
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  private readonly failures: FailedTask[] = [];
  private readonly started = Date.now();
  private succeeded = 0;
  private failed = 0;
  private skipped = 0;
  private running = 0;
  /** Tasks taken from the phase file (skipped ones included). */
  private expected = 0;
  /** Tasks with a final outcome, or left for a resume by an interrupt. */
  private settled = 0;
  private inFlight = 0;
  /** Tasks submitted by this tasker, and those the broker confirmed it holds. */
  private submitted = 0;
  private queuedCount = 0;
  private listening = false;
  private stopped = false;
  private wasInterrupted = false;
  private wakeUp: (() => void) | undefined;
  private failure: unknown;
  private progressTimer: NodeJS.Timeout | undefined;
  /** Commands of spawned tasks (their LENGTH column is SPAWNED, their OFFSET the index here). */
  private readonly spawned: string[] = [];
  private droppedSpawns = 0;
  private warnedFull = false;

  constructor(
    private readonly phase: PhasePlan,
    private readonly transport: Transport,
    private readonly ledger: LedgerWriter,
    private readonly memory: RunMemory,
    private readonly options: DispatchOptions,
    private readonly log: Logger,
    private readonly onProgress: (progress: PhaseProgress) => void,
    private readonly spawns: SpawnBook,
  ) {
    this.spool = new SpoolReader(phase.spool);
  }

  close(): void {
    clearInterval(this.progressTimer);
    for (const timer of this.retryTimers.values()) clearTimeout(timer);
    this.spool.close();
  }

  async interrupt(): Promise<void> {
    if (this.wasInterrupted) return;
    this.wasInterrupted = true;
    this.stopped = true;
    for (const [id, timer] of this.retryTimers) {
      clearTimeout(timer);
      this.leave(id);
    }
    this.retryTimers.clear();
    await this.transport.cancel();
    // Whatever never came back stays unfinished in the ledger and runs again on resume (or,
    // on a broker, its result waits in the run's results queue).
    this.settled += this.inFlight;
    this.inFlight = 0;
    this.wake();
  }

  async execute(): Promise<PhaseSummary> {
    this.progressTimer = setInterval(() => this.reportProgress(), 250);
    const serial = this.phase.kind === 'serial';
    // Tasks spawned in this phase by an earlier session of the run come after the planned ones.
    for (const [, command] of this.memory.spawnedIn(this.phase.name)) this.spawned.push(command);
    // Attempts a previous tasker published and that have no outcome yet are still out there:
    // wait for their results instead of publishing them again. (A pass over the phase file,
    // made only when a previous session left such attempts.)
    if (this.memory.anyPending) {
      for await (const task of this.phaseTasks()) {
        const pending = this.memory.pending(task.id);
        if (pending > 0 && !this.memory.succeeded(task.id)) this.track(task, pending);
      }
    }
    if (this.inFlight > 0) this.listen();
    for await (const task of this.phaseTasks()) {
      if (this.stopped || this.failure) break;
      if (this.tasks.find(task.id) >= 0) continue; // pending, tracked above
      this.expected++;
      if (this.memory.succeeded(task.id)) {
        this.skipped++;
        this.settled++;
        continue;
      }
      const attempt = this.memory.attempts(task.id) + 1;
      // Publish-only: nothing waits for the task here, so nothing is kept about it (a million
      // tasks publish in constant memory).
      if (!this.publishOnly()) this.track(task, attempt, false);
      this.listen();
      this.submitted++;
      await this.transport.submit(this.message(task.id, task.command, attempt));
      if (serial) await this.until(() => this.stopped || this.state(task.id) !== IN_FLIGHT);
    }
    if (this.options.noWait && !serial) {
      await this.until(() => this.queuedCount >= this.submitted);
    } else {
      await this.until(() => this.settled >= this.expected);
    }
    clearInterval(this.progressTimer);
    this.reportProgress();
    if (this.failure) throw this.failure;
    return {
      name: this.phase.name,
      kind: this.phase.kind,
      total: this.phase.total + this.spawned.length,
      succeeded: this.succeeded,
      failed: this.failed,
      skipped: this.skipped,
      interrupted: this.wasInterrupted || this.expected < this.phase.total,
      failures: this.failures,
      elapsedMs: Date.now() - this.started,
    };
  }

  /** The phase's planned tasks, from its phase file, then those spawned in an earlier session. */
  private async *phaseTasks(): AsyncGenerator<SpooledTask> {
    yield* readSpool(this.phase.spool);
    const spawned = this.memory.spawnedIn(this.phase.name);
    for (const [index, [id, command]] of spawned.entries())
      yield { id, command, offset: index, length: SPAWNED };
  }

  private track(
    task: { id: string; offset: number; length: number },
    attempt: number,
    counted = true,
  ): void {
    const slot = this.tasks.upsert(task.id);
    this.tasks.set(slot, OFFSET, task.offset);
    this.tasks.set(slot, LENGTH, task.length);
    this.pack(slot, attempt, attempt, IN_FLIGHT);
    this.inFlight++;
    if (counted) this.expected++;
  }

  private listen(): void {
    if (this.listening) return;
    this.listening = true;
    const listener: TransportListener = {
      queued: (tasks) => this.onQueued(tasks),
      started: (task, attempt, worker, at) => this.onStarted(task, attempt, worker, at),
      result: (result, task) => this.onResult(result, task?.command),
      fatal: (error) => {
        this.failure ??= error;
        this.wake();
      },
    };
    // A `--no-wait` phase publishes and leaves: its results stay queued for `tasker collect`.
    this.transport.listen(listener, { results: !this.publishOnly() });
  }

  private publishOnly(): boolean {
    return this.options.noWait === true && this.phase.kind === 'parallel';
  }

  private state(id: string): number {
    const slot = this.tasks.find(id);
    return slot < 0 ? 0 : this.stateOf(slot);
  }

  private pack(slot: number, attempt: number, first: number, state: number): void {
    this.tasks.set(slot, PACKED, (attempt & 0xfff) | ((first & 0xfff) << 12) | (state << 24));
  }

  private attemptOf(slot: number): number {
    return this.tasks.get(slot, PACKED) & 0xfff;
  }

  private firstOf(slot: number): number {
    return (this.tasks.get(slot, PACKED) >>> 12) & 0xfff;
  }

  private stateOf(slot: number): number {
    return (this.tasks.get(slot, PACKED) >>> 24) & 0x3;
  }

  private commandOf(slot: number): string {
    const offset = this.tasks.get(slot, OFFSET);
    const length = this.tasks.get(slot, LENGTH);
    if (length === SPAWNED) return this.spawned[offset] as string;
    return this.spool.command(offset, length);
  }

  private message(id: string, command: string, attempt: number): TaskMessage {
    return {
      v: PROTOCOL_VERSION,
      run: this.options.run,
      phase: this.phase.name,
      task: id,
      attempt,
      command,
      timeoutMs: this.options.timeoutMs,
      ...(this.options.upload?.length ? { upload: [...this.options.upload] } : {}),
    };
  }

  private onQueued(tasks: readonly TaskMessage[]): void {
    const fresh = tasks.filter((task) => task.phase === this.phase.name);
    if (fresh.length === 0) return;
    this.ledger.append({
      type: 'queued',
      at: new Date().toISOString(),
      phase: this.phase.name,
      tasks: fresh.map((task) => [task.task, task.attempt] as const),
    });
    this.queuedCount += fresh.length;
    this.wake();
  }

  private onStarted(id: string, attempt: number, worker: string, at: Date): void {
    const slot = this.tasks.find(id);
    if (slot < 0 || this.stateOf(slot) !== IN_FLIGHT || this.attemptOf(slot) !== attempt) return;
    this.running++;
    this.ledger.append({
      type: 'start',
      at: at.toISOString(),
      task: id,
      phase: this.phase.name,
      attempt,
      worker,
    });
  }

  private onResult(result: TaskResult, known?: string): Promise<void> {
    const slot = this.tasks.find(result.task);
    if (
      slot < 0 ||
      result.run !== this.options.run ||
      result.phase !== this.phase.name ||
      this.stateOf(slot) !== IN_FLIGHT ||
      this.attemptOf(slot) !== result.attempt
    ) {
      // The result of a task another tasker of this run published and left (`send --no-wait`
      // of an earlier phase): recorded, so that it is not lost, as `tasker collect` would.
      if (
        result.run === this.options.run &&
        result.phase !== this.phase.name &&
        this.memory.pending(result.task) === result.attempt &&
        !this.memory.succeeded(result.task)
      ) {
        this.memory.ended(result.task, result.attempt, result.state === 'succeeded');
        this.ledger.append(
          endRecordOf(result, { phase: result.phase, command: known ?? '', final: true }),
        );
        return this.ledger.flushed();
      }
      this.log.debug(
        { task: result.task, attempt: result.attempt },
        'dropped a duplicate or stale result',
      );
      return Promise.resolve();
    }
    const first = this.firstOf(slot);
    // `lost` (the broker's delivery limit ran out) and `rejected` (a bad message) are final:
    // the first already had its retries, the second would fail the same way again.
    const retry =
      result.state === 'failed' &&
      result.failure !== 'lost' &&
      result.failure !== 'rejected' &&
      result.attempt < first + this.options.retries &&
      !this.wasInterrupted;
    const final = result.state === 'succeeded' || (result.state === 'failed' && !retry);
    const command = known ?? this.commandOf(slot);
    const record = endRecordOf(result, { phase: result.phase, command, final });
    this.ledger.append(record);
    if (this.running > 0) this.running--;
    if (result.state === 'succeeded' && result.spawned?.length)
      this.spawn(result.task, result.spawned);
    if (retry) {
      // The next attempt is the one awaited from now on: a duplicate of this result, arriving
      // while the retry waits, is stale and counts nothing.
      this.pack(slot, result.attempt + 1, first, IN_FLIGHT);
      this.scheduleRetry(result, command, first);
    } else {
      this.pack(slot, result.attempt, first, result.state === 'cancelled' ? LEFT : FINAL);
      this.inFlight--;
      this.settled++;
      if (result.state === 'succeeded') this.succeeded++;
      if (result.state === 'failed') this.recordFailure(result, command, record.errorTail);
      this.wake();
    }
    return this.ledger.flushed();
  }

  /**
   * Adds the tasks a task spawned to this phase: new commands only (over the whole run), within
   * `--max-tasks`. They are in the ledger before the result that brought them is acknowledged,
   * so a tasker killed now finds them on resume; the barrier waits for them.
   */
  private spawn(by: string, commands: readonly string[]): void {
    const accepted: [string, string][] = [];
    for (const command of commands) {
      // A task of this phase already (planned, or spawned before), or of the run.
      const id = taskId(this.options.run, this.phase.name, command);
      if (this.tasks.find(id) >= 0 || this.memory.attempts(id) > 0) continue;
      if (accepted.some(([other]) => other === id)) continue;
      const verdict = this.spawns.take(command);
      if (verdict === 'full') this.droppedSpawns++;
      if (verdict === 'new') accepted.push([id, command]);
    }
    if (this.droppedSpawns > 0 && !this.warnedFull) {
      this.warnedFull = true;
      this.log.warn(
        { phase: this.phase.name },
        `--max-tasks ${this.options.maxTasks} reached: tasks spawned from now on are dropped`,
      );
    }
    if (accepted.length === 0) return;
    this.ledger.append({
      type: 'spawn',
      at: new Date().toISOString(),
      phase: this.phase.name,
      by,
      tasks: accepted,
    });
    if (this.stopped) return; // recorded: a resume runs them
    for (const [id, command] of accepted) {
      this.spawned.push(command);
      this.track({ id, offset: this.spawned.length - 1, length: SPAWNED }, 1);
      this.submitted++;
      this.transport.submit(this.message(id, command, 1)).catch((error: unknown) => {
        this.failure ??= error;
        this.wake();
      });
    }
  }

  private recordFailure(result: TaskResult, command: string, tail: string): void {
    this.failed++;
    if (this.failures.length < MAX_LISTED) {
      this.failures.push({
        task: result.task,
        phase: result.phase,
        command,
        attempt: result.attempt,
        reason: result.reason ?? 'failed',
        errorTail: tail,
      });
    }
    this.log.warn(
      { task: result.task, phase: result.phase, attempt: result.attempt },
      `task failed for good (${result.reason}): ${command}`,
    );
    if (this.phase.kind === 'serial' && !this.options.keepGoing) this.stopped = true;
  }

  private scheduleRetry(result: TaskResult, command: string, first: number): void {
    const retryNumber = result.attempt - first + 1;
    const delay = Math.min(this.options.retryDelayMs * 2 ** (retryNumber - 1), MINUTE);
    this.log.info(
      { task: result.task, phase: result.phase, attempt: result.attempt },
      `task failed (${result.reason}), retry ${retryNumber} of ${this.options.retries} in ${formatDuration(delay)}: ${command}`,
    );
    const next = result.attempt + 1;
    clearTimeout(this.retryTimers.get(result.task));
    const timer = setTimeout(() => {
      this.retryTimers.delete(result.task);
      const slot = this.tasks.find(result.task);
      if (slot < 0 || this.stateOf(slot) !== IN_FLIGHT || this.attemptOf(slot) !== next) return;
      if (this.stopped) {
        this.leave(result.task);
        this.wake();
        return;
      }
      this.transport.submit(this.message(result.task, command, next)).catch((error: unknown) => {
        this.failure ??= error;
        this.wake();
      });
    }, delay);
    this.retryTimers.set(result.task, timer);
  }

  /** Leaves a task unfinished (interrupted while waiting for its retry). */
  private leave(id: string): void {
    const slot = this.tasks.find(id);
    if (slot < 0 || this.stateOf(slot) !== IN_FLIGHT) return;
    this.pack(slot, this.attemptOf(slot), this.firstOf(slot), LEFT);
    this.inFlight--;
    this.settled++;
  }

  private reportProgress(): void {
    this.onProgress({
      phase: this.phase.name,
      total: this.phase.total + this.spawned.length,
      done: this.succeeded + this.skipped + this.failed,
      failed: this.failed,
      running: this.running,
    });
  }

  private wake(): void {
    const wakeUp = this.wakeUp;
    this.wakeUp = undefined;
    wakeUp?.();
  }

  /** Waits until `condition` holds, re-checked whenever something settles. */
  private async until(condition: () => boolean): Promise<void> {
    while (!condition() && !this.failure) {
      await new Promise<void>((resolve) => {
        this.wakeUp = resolve;
      });
    }
  }
}
