import { existsSync } from 'node:fs';
import { InputError } from '../../shared/errors.js';
import type { AnyFailureClass, TaskResult } from '../../shared/protocol.js';
import { statePaths } from '../../shared/statePaths.js';
import { DurationHistory } from '../history/index.js';
import { type PhaseKind, readSpool } from '../jobs/index.js';
import {
  isRunActive,
  type LedgerVisitor,
  type PlannedPhase,
  plannedPhasesVisitor,
  replayLedger,
} from '../ledger/index.js';
import { type BrokerViewRecord, readBrokerView } from './brokerView.js';
import { WorkAhead } from './workAhead.js';

/** A task's state in `tasker status`. */
export type TaskState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** One task in `tasker status --json` (a public interface: see docs/ledger.md). */
export interface TaskStatus {
  id: string;
  phase: string;
  command: string;
  state: TaskState;
  attempts: number;
  exitCode: number | null;
  /** The signal that ended the latest attempt (`SIGKILL`), or that Warren stopped it with. */
  signal: string | null;
  failure: AnyFailureClass | null;
  reason: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  worker: string | null;
  /** The size class of its latest attempt (`--classes`); null where the run has none. */
  class: string | null;
  errorTail: string;
  logs: TaskResult['logs'];
}

export interface PhaseStatus {
  name: string;
  kind: PhaseKind;
  total: number;
  succeeded: number;
  failed: number;
  running: number;
  queued: number;
  cancelled: number;
  /** Tasks that needed more than one attempt. */
  retried: number;
  /** First start and last end of its tasks' attempts, as far as the ledger knows. */
  startedAt: string | null;
  finishedAt: string | null;
  /**
   * Time left, in ms, while a tasker runs the phase: from the durations its tasks took in earlier
   * runs of the state dir when some have one, else at the pace so far once a task ended; null
   * otherwise (docs/observing.md).
   */
  etaMs: number | null;
  /** What `etaMs` comes from: `history` (earlier runs' durations) or `pace`; null with no ETA. */
  etaFrom: 'history' | 'pace' | null;
  /** How its tasks were published: `longest` expected first or `file` order; null: not said. */
  order: 'longest' | 'file' | null;
}

/** `tasker status --json`. */
export interface RunStatus {
  run: string;
  /**
   * `running` while a tasker holds the run (`cancelling` once `tasker cancel` asked it to stop);
   * otherwise how its last tasker ended. `waiting`: published with `send --no-wait`, results not
   * collected yet.
   */
  state:
    | 'running'
    | 'cancelling'
    | 'waiting'
    | 'succeeded'
    | 'failed'
    | 'interrupted'
    | 'cancelled'
    | 'error';
  mode: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  exitCode: number | null;
  phases: PhaseStatus[];
  tasks: TaskStatus[];
  /**
   * While a tasker runs the run through a broker: the task queue as the broker reported it at
   * the tasker's last look, and what the phase waits for (`no worker is consuming ...`).
   */
  broker: BrokerViewRecord | null;
}

/** What the ledger says of one task: its last attempt (or its success); no id. */
interface KnownTask extends Omit<TaskStatus, 'id' | 'command'> {
  /** Null until an attempt ended (a `start` record has no command). */
  command: string | null;
}

/**
 * A run as its ledger tells it, filled by a replay through `visitor` (the tasks of each phase
 * come from its phase file afterwards).
 */
class StatusFold {
  /** Phases in the order first planned (or started), with their kind and latest total. */
  readonly phases = new Map<string, PlannedPhase>();
  /** Tasks with a `start` or an `end` record. */
  readonly known = new Map<string, KnownTask>();
  /** Tasks spawned in each phase, in order: `[id, command]`. */
  readonly spawned = new Map<string, (readonly [string, string])[]>();
  mode: string | null = null;
  startedAt: string | null = null;
  finishedAt: string | null = null;
  exitCode: number | null = null;
  /** Cancelled, and not started again since. */
  cancelled = false;
  /** How each parallel phase was ordered, the latest session's word. */
  readonly orders = new Map<string, 'longest' | 'file'>();

  readonly visitor: LedgerVisitor = {
    run: (record) => {
      this.cancelled = false;
      this.mode = record.mode;
      this.startedAt ??= record.at;
      this.finishedAt = null;
      this.exitCode = null;
    },
    'run-end': (record) => {
      this.finishedAt = record.at;
      this.exitCode = record.exitCode;
    },
    start: (record) => {
      const task = this.known.get(record.task);
      if (task?.state === 'succeeded') return;
      this.known.set(record.task, {
        ...(task ?? blank(record.phase)),
        state: 'running',
        attempts: Math.max(task?.attempts ?? 0, record.attempt),
        startedAt: record.at,
        finishedAt: null,
        worker: record.worker,
        class: record.class ?? null,
      });
    },
    end: (record) => {
      const task = this.known.get(record.task);
      if (task?.state === 'succeeded') return;
      this.known.set(record.task, {
        phase: record.phase,
        command: record.command,
        state: record.state === 'failed' && !record.final ? 'queued' : record.state,
        attempts: Math.max(task?.attempts ?? 0, record.attempt),
        exitCode: record.exitCode,
        signal: record.signal ?? null,
        failure: record.failure,
        reason: record.reason,
        startedAt: record.startedAt,
        finishedAt: record.finishedAt,
        worker: record.worker,
        class: record.class ?? null,
        errorTail: record.errorTail,
        logs: record.logs,
      });
    },
    cancel: () => {
      this.cancelled = true;
    },
    order: (record) => {
      this.orders.set(record.phase, record.by);
    },
    spawn: (record) => {
      const list = this.spawned.get(record.phase) ?? [];
      for (const task of record.tasks) list.push(task);
      this.spawned.set(record.phase, list);
    },
  };
}

/**
 * Reads a run's ledger and phase files into its status. `also` hear the same replay of the
 * ledger (the report folds its timeline from it): one pass for both.
 */
export async function runStatus(
  stateDir: string,
  run: string,
  also: readonly LedgerVisitor[] = [],
): Promise<RunStatus> {
  const ledgerPath = statePaths.ledger(stateDir, run);
  if (!existsSync(ledgerPath))
    throw new InputError('NO_SUCH_RUN', `no run \`${run}\` in \`${stateDir}\``);
  const active = await isRunActive(stateDir, run);
  // `tasker cancel` asked the run's tasker to stop: what has not started will not.
  const stopping = active && existsSync(statePaths.cancelRequest(stateDir, run));
  const fold = new StatusFold();
  await replayLedger(ledgerPath, [plannedPhasesVisitor(fold.phases), fold.visitor, ...also]);
  const { phases, known, spawned, mode, startedAt, finishedAt, exitCode, cancelled, orders } = fold;
  // The durations the running tasker ordered its phases by, as it saved them (read only).
  const history = active
    ? (await DurationHistory.load(stateDir, { update: false })).history
    : undefined;
  const now = Date.now();
  // Without a live tasker nothing runs in local mode: its unfinished tasks wait for a resume.
  const nothingRuns = !active && mode === 'local';
  const tasks: TaskStatus[] = [];
  const phaseStatus: PhaseStatus[] = [];
  for (const [name, phase] of phases) {
    const counts: PhaseStatus = {
      name,
      kind: phase.kind,
      total: 0,
      succeeded: 0,
      failed: 0,
      running: 0,
      queued: 0,
      cancelled: 0,
      retried: 0,
      startedAt: null,
      finishedAt: null,
      etaMs: null,
      etaFrom: null,
      order: orders.get(name) ?? null,
    };
    const ahead = history && history.size > 0 ? new WorkAhead(now) : undefined;
    const planned = readSpool(statePaths.spool(stateDir, run, name));
    for await (const { id, command } of withSpawned(planned, spawned.get(name) ?? [])) {
      const task = known.get(id);
      const last: TaskState = !task
        ? 'queued'
        : task.state === 'running' && nothingRuns
          ? 'queued'
          : task.state;
      // A cancelled run's unfinished tasks stay cancelled until the run is resumed; while its
      // tasker stops, those not started are cancelled already, running ones are being stopped.
      const state: TaskState =
        (cancelled && (last === 'queued' || last === 'running')) || (stopping && last === 'queued')
          ? 'cancelled'
          : last;
      counts.total++;
      counts[state]++;
      if ((task?.attempts ?? 0) > 1) counts.retried++;
      if (task?.startedAt && (!counts.startedAt || task.startedAt < counts.startedAt))
        counts.startedAt = task.startedAt;
      if (task?.finishedAt && (!counts.finishedAt || task.finishedAt > counts.finishedAt))
        counts.finishedAt = task.finishedAt;
      ahead?.add(state, task?.startedAt ?? null, task?.finishedAt ?? null, () =>
        history?.expectedMs(command),
      );
      tasks.push({
        id,
        phase: name,
        command,
        state,
        attempts: task?.attempts ?? 0,
        exitCode: task?.exitCode ?? null,
        signal: task?.signal ?? null,
        failure: task?.failure ?? null,
        reason: task?.reason ?? null,
        startedAt: task?.startedAt ?? null,
        finishedAt: task?.finishedAt ?? null,
        worker: task?.worker ?? null,
        class: task?.class ?? null,
        errorTail: task?.errorTail ?? '',
        logs: task?.logs ?? null,
      });
    }
    // A phase with no attempt started yet has no ETA: nothing says how many slots it will get.
    const estimating = active && !stopping && !cancelled;
    const fromHistory = estimating && counts.startedAt ? ahead?.etaMs() : undefined;
    counts.etaMs = fromHistory ?? etaOf(counts, estimating);
    counts.etaFrom = counts.etaMs === null ? null : fromHistory === undefined ? 'pace' : 'history';
    phaseStatus.push(counts);
  }
  // Tasks out on the broker with no tasker waiting for them (`send --no-wait`): their results
  // wait in the run's queue until `tasker collect`.
  const out =
    mode === 'rabbitmq' &&
    tasks.some((task) => task.state === 'queued' || task.state === 'running');
  const state: RunStatus['state'] = active
    ? stopping || cancelled
      ? 'cancelling'
      : 'running'
    : cancelled
      ? 'cancelled'
      : out && exitCode === 0
        ? 'waiting'
        : exitCode === 0
          ? 'succeeded'
          : exitCode === 1
            ? 'failed'
            : exitCode === null || exitCode === 130
              ? 'interrupted'
              : 'error';
  const broker = active ? (readBrokerView(statePaths.brokerView(stateDir, run)) ?? null) : null;
  return { run, state, mode, startedAt, finishedAt, exitCode, phases: phaseStatus, tasks, broker };
}

/** Time left in a phase at its pace so far (tasks ended per ms since its first start). */
function etaOf(phase: PhaseStatus, active: boolean): number | null {
  const done = phase.succeeded + phase.failed;
  const left = phase.total - done - phase.cancelled;
  if (!active || done === 0 || left <= 0 || !phase.startedAt) return null;
  const elapsed = Date.now() - Date.parse(phase.startedAt);
  return Math.round((elapsed / done) * left);
}

/** A phase's tasks: those planned, then those its tasks spawned. */
async function* withSpawned(
  planned: AsyncIterable<{ id: string; command: string }>,
  spawned: readonly (readonly [string, string])[],
): AsyncGenerator<{ id: string; command: string }> {
  yield* planned;
  for (const [id, command] of spawned) yield { id, command };
}

function blank(phase: string): KnownTask {
  return {
    phase,
    command: null,
    state: 'queued',
    attempts: 0,
    exitCode: null,
    signal: null,
    failure: null,
    reason: null,
    startedAt: null,
    finishedAt: null,
    worker: null,
    class: null,
    errorTail: '',
    logs: null,
  };
}
