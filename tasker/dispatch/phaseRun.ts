import { formatDuration, MINUTE } from '../../shared/duration.js';
import type { Logger } from '../../shared/logger.js';
import { PROTOCOL_VERSION, type TaskMessage, type TaskResult } from '../../shared/protocol.js';
import { PhaseForecast } from '../history/index.js';
import type { PhasePlan } from '../jobs/index.js';
import { endRecordOf, type LedgerWriter, type RunMemory, TaskState } from '../ledger/index.js';
import type { QueueView, Transport, TransportListener } from '../transports/index.js';
import { Accounting } from './accounting.js';
import type { DispatchOptions } from './dispatchOptions.js';
import { type PhaseProgress, type PhaseSummary, PhaseTally } from './phaseTally.js';
import { PhaseTasks } from './phaseTasks.js';
import { orderPhase, type PhaseOrder } from './publishOrder.js';
import type { RetryPolicy } from './retryPolicy.js';
import { RetryTimers } from './retryTimers.js';
import { NO_CLASSES_HINT, SizeClasses } from './sizeClasses.js';
import { PhaseSpawns, type SpawnBook } from './spawns.js';
import { planVanished, vanishedLine } from './vanished.js';
import { Wakeup } from './wakeup.js';

/** What a phase runs with: the phase, its transport, and the run's dispatcher's parts. */
export interface PhaseContext {
  readonly phase: PhasePlan;
  readonly transport: Transport;
  readonly ledger: LedgerWriter;
  readonly memory: RunMemory;
  readonly options: DispatchOptions;
  readonly policy: RetryPolicy;
  readonly spawns: SpawnBook;
  readonly log: Logger;
  readonly onProgress: (progress: PhaseProgress) => void;
}

/** How long a task may be nowhere before it counts as vanished, by default. */
const DEFAULT_LOST_AFTER = MINUTE;

/**
 * Where a phase is. `reading`: nothing handed to the transport yet (nothing listened to);
 * `publishing`: handing its tasks over; `waiting`: all handed over, at the barrier;
 * `stopping`: a serial step failed for good, so nothing more starts, and the barrier waits for
 * what is out; `interrupted`: nothing more starts and nothing more is waited for (what did not
 * finish runs again on resume).
 */
type Stage = 'reading' | 'publishing' | 'waiting' | 'stopping' | 'interrupted';

/**
 * One phase's run: hands its tasks to the transport, records each attempt, retries by the
 * policy, and returns when every task the phase took has a final outcome.
 */
export class PhaseRun {
  private stage: Stage = 'reading';
  /** Why the phase cannot go on (the transport or the ledger failed): thrown by `execute`. */
  private failure: unknown;
  private readonly tasks: PhaseTasks;
  private readonly tally = new PhaseTally();
  private readonly retries = new RetryTimers((id, command, attempt) =>
    this.retryDue(id, command, attempt),
  );
  private readonly wakeup = new Wakeup();
  /**
   * A `--no-wait` parallel phase: its barrier is "the transport holds every task", so nothing
   * waits for a task and nothing is kept about it (a million tasks publish in constant memory).
   */
  private readonly publishOnly: boolean;
  private progressTimer: NodeJS.Timeout | undefined;
  /** Where each awaited task is, where tasks wait on a broker (not for `--no-wait`). */
  private readonly accounting: Accounting | undefined;
  /** The broker's last word on the task queue, and what is worth saying about it. */
  private broker: { view: QueueView; note: string | undefined } | undefined;
  /** The size classes the transport publishes to (none for a local pool). */
  private readonly classes: SizeClasses;
  /** The phase's time left from its tasks' durations in earlier runs, when some have one. */
  private forecast: PhaseForecast | undefined;

  constructor(private readonly context: PhaseContext) {
    const { phase, options, memory, ledger, log } = context;
    const spawned = new PhaseSpawns(options.run, phase.name, context.spawns, memory, ledger, log);
    this.tasks = new PhaseTasks(phase, memory.tasks, spawned);
    this.publishOnly = options.noWait === true && phase.kind === 'parallel';
    const transport = context.transport;
    this.classes = new SizeClasses(transport.sizeClasses ?? []);
    this.accounting =
      !this.publishOnly && Accounting.supports(transport)
        ? new Accounting(
            memory.tasks,
            transport,
            {
              lostAfterMs: options.lostAfterMs ?? DEFAULT_LOST_AFTER,
              classes: this.classes.names,
            },
            log,
            {
              vanished: (slots, why, again) => this.onVanished(slots, why, again),
              view: (view, note) => {
                this.broker = { view, note };
              },
            },
          )
        : undefined;
  }

  close(): void {
    this.accounting?.stop();
    clearInterval(this.progressTimer);
    this.retries.close();
    this.tasks.close();
  }

  /** Stops the phase: nothing more is submitted or retried, and `execute` returns. */
  async interrupt(): Promise<void> {
    if (this.stage === 'interrupted') return;
    this.stage = 'interrupted';
    for (const id of this.retries.cancel()) if (this.tasks.leave(id)) this.tally.left++;
    // Whatever never comes back stays unfinished in the ledger and runs again on resume (or,
    // on a broker, its result waits in the run's results queue).
    await this.context.transport.cancel();
    this.wake();
  }

  async execute(): Promise<PhaseSummary> {
    const { phase, memory, transport } = this.context;
    const { publishOnly, tally } = this;
    const table = this.tasks.table;
    const serial = phase.kind === 'serial';
    this.progressTimer = setInterval(() => this.reportProgress(), 250);
    const order = await this.order();
    const timing = memory.timing(phase.name);
    if (timing) transport.expect?.(phase.name, timing.meanMs, timing.count);
    else if (order.known > 0)
      transport.expect?.(phase.name, order.knownMs / order.known, order.known);
    // Attempts an earlier session left out are waited for, not published again (a pass over
    // the phase file, made only on such a resume).
    if (memory.anyPending) {
      // Out there somewhere: on the broker, on a worker, or its result waiting; the accounting
      // finds out which, as for a task published now.
      const adopted = await this.tasks.adoptPending((slot) => this.accounting?.queued(slot));
      tally.expected += adopted;
      if (adopted > 0) this.listen();
    }
    for await (const task of this.tasks.inOrder(order)) {
      if (this.halted || this.failure) break;
      const slot = publishOnly ? table.find(task.id) : table.add(task.id);
      if (slot >= 0 && table.first(slot) > 0) continue; // taken already: adopted, or spawned
      tally.expected++;
      if (slot >= 0 && table.state(slot) === TaskState.SUCCEEDED) {
        tally.skipped++;
        continue;
      }
      const attempt = (slot < 0 ? 0 : table.attempt(slot)) + 1;
      if (!publishOnly) table.take(slot, attempt, task.offset, task.length);
      this.forecast?.taken(task.id, task.expectedMs);
      this.listen();
      tally.submitted++;
      // A resumed task starts on the class its latest attempt ran on.
      const sizeClass = slot < 0 ? 0 : table.sizeClass(slot);
      await transport.submit(this.message(task.id, task.command, attempt, sizeClass));
      if (serial) await this.until(() => this.halted || !this.tasks.inFlight(task.id));
    }
    if (this.stage === 'reading' || this.stage === 'publishing') this.stage = 'waiting';
    if (publishOnly) await this.until(() => tally.queued >= tally.submitted);
    else await this.until(() => this.stage === 'interrupted' || tally.settled >= tally.expected);
    clearInterval(this.progressTimer);
    this.reportProgress();
    if (this.failure) throw this.failure;
    return tally.summary(
      phase,
      this.total,
      this.stage === 'interrupted' || tally.expected < (phase.only?.size ?? phase.total),
    );
  }

  /**
   * Orders the phase's tasks for publishing (serial phases keep file order) and records how; a
   * phase some of whose tasks have a history gets a forecast.
   */
  private async order(): Promise<PhaseOrder> {
    const { phase, options, ledger, log } = this.context;
    const wanted = options.order ?? 'longest';
    const order = await orderPhase(phase, wanted, options.expectedMs);
    if (phase.kind !== 'parallel') return order;
    ledger.append({
      type: 'order',
      at: new Date().toISOString(),
      phase: phase.name,
      by: order.by,
      known: order.known,
      unknown: order.unknown,
      knownMs: order.knownMs,
    });
    if (order.known > 0 && !this.publishOnly) this.forecast = new PhaseForecast(order.medianMs);
    if (order.by === 'longest') {
      const without = order.unknown === 0 ? '' : `; the ${order.unknown} without one go first`;
      log.info(
        { phase: phase.name },
        `phase ${phase.name}: publishing longest expected first (${order.known} of ${order.known + order.unknown} tasks took ${formatDuration(order.knownMs)} together in earlier runs${without})`,
      );
    }
    return order;
  }

  /** Nothing more starts: the phase stops or was interrupted. */
  private get halted(): boolean {
    return this.stage === 'stopping' || this.stage === 'interrupted';
  }

  /** The phase's tasks: planned and spawned (of a rerun: those it runs, and what they spawn). */
  private get total(): number {
    const { only, total } = this.context.phase;
    const spawned = this.tasks.spawned;
    return only ? only.size + spawned.fresh : total + spawned.count;
  }

  /** Starts listening to the transport, at the first task handed to it. */
  private listen(): void {
    if (this.stage !== 'reading') return;
    this.stage = 'publishing';
    const listener: TransportListener = {
      queued: (tasks) => this.onQueued(tasks),
      started: (task, attempt, worker, at) => this.onStarted(task, attempt, worker, at),
      leased: (run, tasks) => this.onLeased(run, tasks),
      result: (result, task) => this.onResult(result, task?.command),
      fatal: (error) => this.fail(error),
    };
    // A `--no-wait` phase waits for `queued`, not for results: the transport was opened to leave
    // them in the run's queue for `tasker collect`.
    this.context.transport.listen(listener);
    this.accounting?.start();
  }

  private fail(error: unknown): void {
    this.failure ??= error;
    this.wake();
  }

  /** The message of `attempt` of a task, on size class `sizeClass` (an index, 0: `default`). */
  private message(id: string, command: string, attempt: number, sizeClass = 0): TaskMessage {
    const { options, phase } = this.context;
    return {
      v: PROTOCOL_VERSION,
      run: options.run,
      phase: phase.name,
      task: id,
      attempt,
      command,
      timeoutMs: options.timeoutMs,
      ...(options.upload?.length ? { upload: [...options.upload] } : {}),
      ...this.classes.messageField(sizeClass),
    };
  }

  private onQueued(tasks: readonly TaskMessage[]): void {
    const phase = this.context.phase.name;
    const fresh = tasks.filter((task) => task.phase === phase);
    if (fresh.length === 0) return;
    const at = new Date().toISOString();
    if (!this.classes.configured)
      this.context.ledger.append({
        type: 'queued',
        at,
        phase,
        tasks: fresh.map((task) => [task.task, task.attempt] as const),
      });
    else {
      // One record per size class, each naming its class.
      const byClass = new Map<string, (readonly [string, number])[]>();
      for (const task of fresh) {
        const name = this.classes.nameOf(Math.max(0, this.classes.names.indexOf(task.class ?? '')));
        const list = byClass.get(name) ?? [];
        list.push([task.task, task.attempt]);
        byClass.set(name, list);
      }
      for (const [name, list] of byClass)
        this.context.ledger.append({ type: 'queued', at, phase, tasks: list, class: name });
    }
    this.tally.queued += fresh.length;
    const accounting = this.accounting;
    if (accounting) {
      for (const task of fresh) {
        const slot = this.tasks.awaiting(task.task, task.attempt);
        if (slot >= 0) accounting.queued(slot);
      }
    }
    this.wake();
  }

  private onLeased(run: string, tasks: readonly (readonly [string, number])[]): void {
    const accounting = this.accounting;
    if (!accounting || run !== this.context.options.run) return;
    for (const [id, attempt] of tasks) {
      const slot = this.tasks.awaiting(id, attempt);
      if (slot >= 0) accounting.leased(slot);
    }
  }

  /**
   * Tasks whose attempt is nowhere (their queue purged or deleted, a message lost): each is
   * published again as a new attempt that uses up none of its retries, up to MAX_VANISHED
   * times; after that it fails for good (`lost`).
   */
  private onVanished(slots: readonly number[], why: 'gone' | 'deleted', again: boolean): void {
    if (this.halted) return;
    const { log, options, phase, transport } = this.context;
    const queue = this.broker?.view.queue ?? 'the task queue';
    if (!again) {
      log.warn({ phase: phase.name }, vanishedLine(slots.length, phase.name, queue, why, false));
      return;
    }
    const plan = planVanished(this.tasks.table, slots, {
      run: options.run,
      phase: phase.name,
      queue,
    });
    // Messages first: the rows' slots hold until the table grows, and nothing here grows it.
    const messages = plan.again.map(([id, slot]) => {
      this.accounting?.reset(slot);
      const table = this.tasks.table;
      return this.message(
        id,
        this.tasks.commandOf(slot),
        table.attempt(slot),
        table.sizeClass(slot),
      );
    });
    if (messages.length > 0)
      log.warn({ phase: phase.name }, vanishedLine(messages.length, phase.name, queue, why, true));
    for (const result of plan.failed) void this.onResult(result);
    for (const message of messages)
      transport.submit(message).catch((error: unknown) => this.fail(error));
  }

  private onStarted(id: string, attempt: number, worker: string, at: Date): void {
    const slot = this.tasks.awaiting(id, attempt);
    if (slot < 0) return;
    this.accounting?.leased(slot);
    this.tally.running++;
    this.forecast?.started(id, at.getTime());
    this.context.ledger.append({
      type: 'start',
      at: at.toISOString(),
      task: id,
      phase: this.context.phase.name,
      attempt,
      worker,
      ...this.classes.recordField(this.tasks.table.sizeClass(slot)),
    });
  }

  private onResult(given: TaskResult, known?: string): Promise<void> {
    const { ledger, options, phase, policy } = this.context;
    const table = this.tasks.table;
    const slot = this.tasks.awaiting(given.task, given.attempt);
    if (slot < 0 || given.run !== options.run) return this.onOtherResult(given, known);
    // Only this phase's tasks are awaited: an attempt it waits for is its own whatever phase the
    // result names (one that could not be read may name none).
    const named = given.phase === phase.name ? given : { ...given, phase: phase.name };
    const sizeClass = table.sizeClass(slot);
    const move = this.halted ? { kind: 'none' as const } : this.classes.moveOf(named, sizeClass);
    const command = known ?? this.tasks.commandOf(slot);
    if (move.kind === 'up') return this.moveUp(named, slot, command, move.to);
    const result = move.kind === 'last' ? { ...named, reason: move.reason } : named;
    const retry = this.stage === 'interrupted' ? 0 : policy.retryOf(result, table.first(slot));
    const final = retry === 0 && result.state !== 'cancelled';
    const record = {
      ...endRecordOf(result, { phase: result.phase, command, final }),
      ...this.classes.recordField(sizeClass),
    };
    ledger.append(record);
    this.forecast?.ended(
      result.task,
      Date.parse(result.startedAt),
      Date.parse(result.finishedAt),
      retry === 0,
    );
    if (this.tally.running > 0) this.tally.running--;
    // The row first: spawning adds rows, which can move this one. While a retry waits, the
    // next attempt is the one awaited: a duplicate of this result is stale and counts nothing.
    if (retry > 0) {
      table.set(slot, TaskState.IN_FLIGHT, result.attempt + 1);
      this.accounting?.reset(slot);
    } else
      table.set(
        slot,
        result.state === 'succeeded' ? TaskState.SUCCEEDED : TaskState.TRIED,
        result.attempt,
      );
    if (result.state === 'succeeded' && result.spawned?.length)
      this.spawn(result.task, result.spawned);
    if (retry > 0) this.scheduleRetry(result, command, retry);
    else {
      if (result.state === 'succeeded') this.tally.succeeded++;
      else if (result.state === 'failed') this.failedForGood(result, command, record.errorTail);
      else this.tally.left++; // cancelled: runs again on resume
      this.wake();
    }
    return ledger.flushed();
  }

  /**
   * The OOM killer killed the attempt and a larger size class exists: the task is published
   * again on it at once, as a new attempt that uses up none of its retries.
   */
  private moveUp(result: TaskResult, slot: number, command: string, to: number): Promise<void> {
    const { ledger, log } = this.context;
    const table = this.tasks.table;
    const from = table.sizeClass(slot);
    ledger.append({
      ...endRecordOf(result, { phase: result.phase, command, final: false }),
      ...this.classes.recordField(from),
    });
    if (this.tally.running > 0) this.tally.running--;
    table.moveUp(slot, to);
    this.accounting?.reset(slot);
    const name = this.classes.nameOf(to);
    log.info(
      { task: result.task, phase: result.phase, attempt: result.attempt },
      `task killed by the OOM killer on size class ${this.classes.nameOf(from)}; publishing it to size class ${name} (attempt ${result.attempt + 1}, no retry used): ${command}`,
    );
    this.context.transport
      .submit(this.message(result.task, command, result.attempt + 1, to))
      .catch((error: unknown) => this.fail(error));
    return ledger.flushed();
  }

  /** A result the phase does not wait for: another phase's, a duplicate, or a stale one. */
  private onOtherResult(result: TaskResult, known: string | undefined): Promise<void> {
    const { ledger, memory, options, phase } = this.context;
    // The result of a task another tasker of this run published and left (`send --no-wait`
    // of an earlier phase): recorded, so that it is not lost, as `tasker collect` would.
    if (
      result.run === options.run &&
      result.phase !== phase.name &&
      memory.pending(result.task) === result.attempt
    ) {
      memory.ended(result.task, result.attempt, result.state === 'succeeded');
      ledger.append(
        endRecordOf(result, { phase: result.phase, command: known ?? '', final: true }),
      );
      return ledger.flushed();
    }
    this.context.log.debug(
      { task: result.task, attempt: result.attempt },
      'dropped a duplicate or stale result',
    );
    return Promise.resolve();
  }

  /**
   * Adds the tasks a task spawned to this phase; the barrier waits for them. Once the phase
   * stops they are only recorded: a resume runs them.
   */
  private spawn(by: string, commands: readonly string[]): void {
    const accepted = this.tasks.spawned.take(by, commands);
    if (accepted.length === 0 || this.halted) return;
    for (const [id, command] of accepted) {
      this.tasks.takeSpawned(id, command);
      this.tally.expected++;
      this.tally.submitted++;
      this.context.transport
        .submit(this.message(id, command, 1))
        .catch((error: unknown) => this.fail(error));
    }
  }

  private failedForGood(result: TaskResult, command: string, errorTail: string): void {
    const { log, options, phase } = this.context;
    this.tally.fail(result, command, errorTail);
    const hint = result.failure === 'oom' && !this.classes.configured ? `; ${NO_CLASSES_HINT}` : '';
    log.warn(
      { task: result.task, phase: result.phase, attempt: result.attempt },
      `task failed for good (${result.reason}): ${command}${hint}`,
    );
    if (phase.kind === 'serial' && !options.keepGoing && this.stage !== 'interrupted')
      this.stage = 'stopping';
  }

  private scheduleRetry(result: TaskResult, command: string, retry: number): void {
    const { log, policy } = this.context;
    const delay = policy.delayMs(retry);
    log.info(
      { task: result.task, phase: result.phase, attempt: result.attempt },
      `task failed (${result.reason}), retry ${retry} of ${policy.retries} in ${formatDuration(delay)}: ${command}`,
    );
    this.retries.schedule(result.task, command, result.attempt + 1, delay);
  }

  private retryDue(id: string, command: string, attempt: number): void {
    const slot = this.tasks.awaiting(id, attempt);
    if (slot < 0) return;
    if (this.halted) {
      if (this.tasks.leave(id)) this.tally.left++;
      this.wake();
      return;
    }
    this.context.transport
      .submit(this.message(id, command, attempt, this.tasks.table.sizeClass(slot)))
      .catch((error: unknown) => this.fail(error));
  }

  private reportProgress(): void {
    const tally = this.tally.progress(this.context.phase.name, this.total);
    const progress = this.forecast ? { ...tally, etaMs: this.forecast.etaMs() } : tally;
    const broker = this.broker;
    this.context.onProgress(
      broker ? { ...progress, broker: broker.view, note: broker.note } : progress,
    );
  }

  private wake(): void {
    this.wakeup.wake();
  }

  /** Waits until `condition` holds or the phase failed, re-checked whenever something settles. */
  private until(condition: () => boolean): Promise<void> {
    return this.wakeup.until(() => condition() || Boolean(this.failure));
  }
}
