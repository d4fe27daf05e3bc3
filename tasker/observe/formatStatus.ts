import { isAbsolute, join, relative } from 'node:path';
import { formatDuration } from '../../shared/duration.js';
import type { PhaseStatus, RunStatus } from './status.js';

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

/** The columns for `phases`: a `cancelled` one after `queued` when any phase has some. */
export function phaseColumns(phases: readonly PhaseStatus[]): string[] {
  if (!phases.some((phase) => phase.cancelled > 0)) return PHASE_COLUMNS;
  return [...PHASE_COLUMNS.slice(0, 7), 'cancelled', ...PHASE_COLUMNS.slice(7)];
}

/** A phase's row of the phase table; `withCancelled` when `phaseColumns` has that column. */
export function phaseCells(phase: PhaseStatus, withCancelled: boolean): string[] {
  return [
    phase.name,
    phase.kind,
    String(phase.total),
    String(phase.succeeded),
    String(phase.failed),
    String(phase.running),
    String(phase.queued),
    ...(withCancelled ? [String(phase.cancelled)] : []),
    String(phase.retried),
    phase.etaMs === null ? '-' : formatDuration(phase.etaMs),
  ];
}

/** The broker's counts beside the ledger's, for a running run: one line, or none. */
function brokerLine(status: RunStatus): string[] {
  const broker = status.broker;
  if (!broker) return [];
  const at = broker.at.replace('T', ' ').slice(11, 19);
  const line = `broker (${at} UTC): ${broker.queue} holds ${broker.ready} ready task(s), ${broker.consumers} consumer(s)${broker.recreated ? ' (it was gone: declared again)' : ''}`;
  return ['', line, ...(broker.note ? [broker.note] : [])];
}

/** Where the reader is and the state dir is: log paths are printed for that reader to open. */
export interface Viewpoint {
  /** Absolute. */
  readonly stateDir: string;
  /** Absolute: the directory the command was started in. */
  readonly cwd: string;
}

/**
 * A path in the state dir (as the ledger keeps them, relative to it) as the reader can open it:
 * relative to their directory when it is inside it, absolute otherwise.
 */
export function openablePath(file: string, where: Viewpoint): string {
  const absolute = isAbsolute(file) ? file : join(where.stateDir, file);
  const near = relative(where.cwd, absolute);
  return near && !near.startsWith('..') && !isAbsolute(near) ? near : absolute;
}

/** The human form of `tasker status`. */
export function formatStatus(status: RunStatus, onlyFailed: boolean, where: Viewpoint): string {
  const when = status.startedAt
    ? `, started ${status.startedAt.replace('T', ' ').slice(0, 19)} UTC`
    : '';
  const lines = [
    `run ${status.run}: ${status.state} (${status.mode ?? 'unknown'} mode${when})`,
    '',
  ];
  const withCancelled = status.phases.some((phase) => phase.cancelled > 0);
  lines.push(
    table([
      phaseColumns(status.phases),
      ...status.phases.map((phase) => phaseCells(phase, withCancelled)),
    ]),
  );
  lines.push(...brokerLine(status));
  const failed = status.tasks.filter((task) => task.state === 'failed');
  if (onlyFailed) {
    lines.push('', failed.length === 0 ? 'no failed tasks' : `${failed.length} failed:`);
    for (const task of failed) {
      lines.push(
        `  ${task.id} [${task.phase}] ${task.failure ?? 'failed'}: ${task.reason ?? 'failed'} after ${task.attempts} attempt(s)${task.class ? ` (size class ${task.class})` : ''}: ${task.command}`,
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
          `    log: ${openablePath(task.logs.stderr.file, where)} (bytes ${task.logs.stderr.start}-${task.logs.stderr.end})`,
        );
    }
  }
  return `${lines.join('\n')}\n`;
}
