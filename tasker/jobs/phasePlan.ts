import type { PhaseKind } from './rules.js';

/** A phase ready to run: its tasks are in `spool`, in order. */
export interface PhasePlan {
  readonly name: string;
  readonly kind: PhaseKind;
  /** Tasks in the phase file (spawned tasks come on top). */
  readonly total: number;
  /** The phase file: one `[id, command]` JSON line per task (see spool.ts). */
  readonly spool: string;
  /**
   * A rerun (`tasker rerun`): only these of the phase's tasks run, planned or spawned by an
   * earlier session; the others stay as the ledger has them. `total` still counts them all.
   */
  readonly only?: ReadonlySet<string>;
}
