import type { PhaseKind } from '../jobs/index.js';
import type { LedgerVisitor } from './replay.js';

/** A phase as the ledger last described it. */
export interface PlannedPhase {
  readonly kind: PhaseKind;
  /** Its tasks, counting those that already succeeded (spawned ones not included). */
  readonly total: number;
}

/**
 * A visitor that gathers a run's phases into `phases` by name: in the order they were first
 * planned (or started), each with its latest kind and total (a later plan or a `phase` record
 * updates them).
 */
export function plannedPhasesVisitor(phases: Map<string, PlannedPhase>): LedgerVisitor {
  return {
    plan: (record) => {
      for (const phase of record.phases)
        phases.set(phase.name, { kind: phase.kind, total: phase.total });
    },
    phase: (record) => {
      phases.set(record.phase, { kind: record.kind, total: record.total });
    },
  };
}
