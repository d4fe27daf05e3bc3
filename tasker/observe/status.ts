import { existsSync } from 'node:fs';
import { formatDuration } from '../../shared/duration.js';
import { InputError } from '../../shared/errors.js';
import type { FailureClass, TaskResult } from '../../shared/protocol.js';
import { statePaths } from '../../shared/statePaths.js';
import type { PhaseKind } from '../jobs/rules.js';
import { readSpool } from '../jobs/spool.js';
import { readLedger } from '../ledger/ledger.js';
import { isRunActive } from '../ledger/runLock.js';

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
  failure: FailureClass | null;
  reason: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  worker: string | null;
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
   * Time left at the pace so far, in ms: for a phase with tasks done and tasks left; null
   * otherwise.
   */
  etaMs: number | null;
}

/** `tasker status --json`. */
export interface RunStatus {
  run: string;
  /** `running` while a tasker holds the run; otherwise how its last tasker ended. */
  /** `waiting`: published with `send --no-wait`, results not collected yet. */
  state: 'running' | 'waiting' | 'succeeded' | 'failed' | 'interrupted' | 'cancelled' | 'error';
  mode: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  exitCode: number | null;
  phases: PhaseStatus[];
  tasks: TaskStatus[];
}

interface Known extends Omit<TaskStatus, 'id' | 'command'> {
  command: string | null;
  final: boolean;
}

/** Reads a run's ledger and phase files into its status. */
export async function runStatus(stateDir: string, run: string): Promise<RunStatus> {
  const ledgerPath = statePaths.ledger(stateDir, run);
  if (!existsSync(ledgerPath))
    throw new InputError('NO_SUCH_RUN', `no run \`${run}\` in \`${stateDir}\``);
  const active = await isRunActive(stateDir, run);
  const phases = new Map<string, { kind: PhaseKind; total: number }>();
  const known = new Map<string, Known>();
  let mode: string | null = null;
  let startedAt: string | null = null;
  let finishedAt: string | null = null;
  let exitCode: number | null = null;
  let cancelled = false;
  const spawned = new Map<string, (readonly [string, string])[]>();
  for await (const record of readLedger(ledgerPath)) {
    switch (record.type) {
      case 'run':
        cancelled = false;
        mode = record.mode;
        startedAt ??= record.at;
        finishedAt = null;
        exitCode = null;
        break;
      case 'run-end':
        finishedAt = record.at;
        exitCode = record.exitCode;
        break;
      case 'plan':
        // Phases keep the place they were first planned in; a later plan updates their totals.
        for (const phase of record.phases)
          phases.set(phase.name, { kind: phase.kind, total: phase.total });
        break;
      case 'phase':
        phases.set(record.phase, { kind: record.kind, total: record.total });
        break;
      case 'start': {
        const task = known.get(record.task);
        if (task?.state === 'succeeded') break;
        known.set(record.task, {
          ...(task ?? blank(record.phase)),
          state: 'running',
          attempts: Math.max(task?.attempts ?? 0, record.attempt),
          startedAt: record.at,
          finishedAt: null,
          worker: record.worker,
        });
        break;
      }
      case 'end': {
        const task = known.get(record.task);
        if (task?.state === 'succeeded') break;
        known.set(record.task, {
          phase: record.phase,
          command: record.command,
          state: record.state === 'failed' && !record.final ? 'queued' : record.state,
          final: record.final,
          attempts: Math.max(task?.attempts ?? 0, record.attempt),
          exitCode: record.exitCode,
          failure: record.failure,
          reason: record.reason,
          startedAt: record.startedAt,
          finishedAt: record.finishedAt,
          worker: record.worker,
          errorTail: record.errorTail,
          logs: record.logs,
        });
        break;
      }
      case 'cancel':
        cancelled = true;
        break;
      case 'spawn': {
        const list = spawned.get(record.phase) ?? [];
        for (const task of record.tasks) list.push(task);
        spawned.set(record.phase, list);
        break;
      }
      case 'phase-end':
        break;
    }
  }
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
    };
    const planned = readSpool(statePaths.spool(stateDir, run, name));
    for await (const { id, command } of withSpawned(planned, spawned.get(name) ?? [])) {
      const task = known.get(id);
      const last: TaskState = !task
        ? 'queued'
        : task.state === 'running' && nothingRuns
          ? 'queued'
          : task.state;
      // A cancelled run's unfinished tasks stay cancelled until the run is resumed.
      const state: TaskState =
        cancelled && (last === 'queued' || last === 'running') ? 'cancelled' : last;
      counts.total++;
      counts[state]++;
      if ((task?.attempts ?? 0) > 1) counts.retried++;
      if (task?.startedAt && (!counts.startedAt || task.startedAt < counts.startedAt))
        counts.startedAt = task.startedAt;
      if (task?.finishedAt && (!counts.finishedAt || task.finishedAt > counts.finishedAt))
        counts.finishedAt = task.finishedAt;
      tasks.push({
        id,
        phase: name,
        command,
        state,
        attempts: task?.attempts ?? 0,
        exitCode: task?.exitCode ?? null,
        failure: task?.failure ?? null,
        reason: task?.reason ?? null,
        startedAt: task?.startedAt ?? null,
        finishedAt: task?.finishedAt ?? null,
        worker: task?.worker ?? null,
        errorTail: task?.errorTail ?? '',
        logs: task?.logs ?? null,
      });
    }
    counts.etaMs = etaOf(counts, active);
    phaseStatus.push(counts);
  }
  // Tasks out on the broker with no tasker waiting for them (`send --no-wait`): their results
  // wait in the run's queue until `tasker collect`.
  const out =
    mode === 'rabbitmq' &&
    tasks.some((task) => task.state === 'queued' || task.state === 'running');
  const state: RunStatus['state'] = active
    ? 'running'
    : cancelled
      ? 'cancelled'
      : out && exitCode === 0
        ? 'waiting'
        : cancelled
          ? 'cancelled'
          : exitCode === 0
            ? 'succeeded'
            : exitCode === 1
              ? 'failed'
              : exitCode === null || exitCode === 130
                ? 'interrupted'
                : 'error';
  return { run, state, mode, startedAt, finishedAt, exitCode, phases: phaseStatus, tasks };
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

function blank(phase: string): Known {
  return {
    phase,
    command: null,
    state: 'queued',
    final: false,
    attempts: 0,
    exitCode: null,
    failure: null,
    reason: null,
    startedAt: null,
    finishedAt: null,
    worker: null,
    errorTail: '',
    logs: null,
  };
}

function table(rows: readonly (readonly string[])[]): string {
  const widths =
    rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, column) =>
          column === 0 || column === 1
            ? cell.padEnd(widths[column] ?? 0)
            : cell.padStart(widths[column] ?? 0),
        )
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The columns of the phase table, in `tasker status` and the report. */
export const PHASE_COLUMNS = [
  'phase',
  'kind',
  'total',
  'succeeded',
  'failed',
  'running',
  'queued',
  'retried',
  'ETA',
];

/** A phase's row of the phase table. */
export function phaseCells(phase: PhaseStatus): string[] {
  return [
    phase.name,
    phase.kind,
    String(phase.total),
    String(phase.succeeded),
    String(phase.failed),
    String(phase.running),
    String(phase.queued + phase.cancelled),
    String(phase.retried),
    phase.etaMs === null ? '-' : formatDuration(phase.etaMs),
  ];
}

/** The human form of `tasker status`. */
export function formatStatus(status: RunStatus, onlyFailed: boolean): string {
  const when = status.startedAt
    ? `, started ${status.startedAt.replace('T', ' ').slice(0, 19)} UTC`
    : '';
  const lines = [
    `run ${status.run}: ${status.state} (${status.mode ?? 'unknown'} mode${when})`,
    '',
  ];
  lines.push(table([PHASE_COLUMNS, ...status.phases.map(phaseCells)]));
  const failed = status.tasks.filter((task) => task.state === 'failed');
  if (onlyFailed) {
    lines.push('', failed.length === 0 ? 'no failed tasks' : `${failed.length} failed:`);
    for (const task of failed) {
      lines.push(
        `  ${task.id} [${task.phase}] ${task.failure ?? 'failed'}: ${task.reason ?? 'failed'} after ${task.attempts} attempt(s): ${task.command}`,
      );
      const tail = task.errorTail.trimEnd();
      if (tail)
        lines.push(
          ...tail
            .split('\n')
            .slice(-5)
            .map((line) => `    | ${line}`),
        );
      if (task.logs)
        lines.push(
          `    log: ${task.logs.stderr.file} (bytes ${task.logs.stderr.start}-${task.logs.stderr.end})`,
        );
    }
  }
  return `${lines.join('\n')}\n`;
}
