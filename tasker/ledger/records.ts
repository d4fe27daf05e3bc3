import type { AnyFailureClass, TaskResult } from '../../shared/protocol.js';
import type { PhaseKind } from '../jobs/index.js';

/** The ledger's format version, written in every `run` record. */
export const LEDGER_VERSION = 1;

/** A tasker started (or resumed) the run. */
export interface RunRecord {
  readonly type: 'run';
  readonly at: string;
  readonly run: string;
  readonly version: number;
  /** `local` or `rabbitmq`. */
  readonly mode: string;
  /** The tasker command that wrote what follows (`run jobs.sh --rules makita`). */
  readonly command: string;
  readonly host: string;
  readonly pid: number;
}

/** The phases this tasker is about to run, in order (so status can show phases not started). */
export interface PlanRecord {
  readonly type: 'plan';
  readonly at: string;
  readonly phases: readonly {
    readonly name: string;
    readonly kind: PhaseKind;
    readonly total: number;
  }[];
}

/** A phase started; `total` counts its tasks, including ones that already succeeded. */
export interface PhaseRecord {
  readonly type: 'phase';
  readonly at: string;
  readonly phase: string;
  readonly kind: PhaseKind;
  readonly total: number;
}

/**
 * How a parallel phase's tasks were ordered for publishing, written before the first goes out:
 * `longest` expected first (from durations in earlier runs of the state dir) or `file` order.
 */
export interface OrderRecord {
  readonly type: 'order';
  readonly at: string;
  readonly phase: string;
  readonly by: 'longest' | 'file';
  /** Tasks of the phase file with a duration from earlier runs, and without one. */
  readonly known: number;
  readonly unknown: number;
  /** The known tasks' durations, together, in ms. */
  readonly knownMs: number;
}

/** Tasks the broker confirmed it holds (not written in local mode): `[id, attempt]` pairs. */
export interface QueuedRecord {
  readonly type: 'queued';
  readonly at: string;
  readonly phase: string;
  readonly tasks: readonly (readonly [string, number])[];
  /** The size class they were published to (`--classes`); absent: `default`. */
  readonly class?: string;
}

/** A task that succeeded added tasks to its phase (`WARREN_SPAWN`): their ids and commands. */
export interface SpawnRecord {
  readonly type: 'spawn';
  readonly at: string;
  readonly phase: string;
  /** The task that spawned them. */
  readonly by: string;
  readonly tasks: readonly (readonly [string, string])[];
}

/** An attempt started on a worker slot. */
export interface StartRecord {
  readonly type: 'start';
  readonly at: string;
  readonly task: string;
  readonly phase: string;
  readonly attempt: number;
  readonly worker: string;
  /** The size class the attempt was published to (`--classes`); absent: `default`. */
  readonly class?: string;
}

/** An attempt ended. `final` is false when it will be retried. */
export interface EndRecord {
  readonly type: 'end';
  readonly at: string;
  readonly task: string;
  readonly phase: string;
  readonly command: string;
  readonly attempt: number;
  readonly state: TaskResult['state'];
  readonly final: boolean;
  readonly failure: AnyFailureClass | null;
  readonly reason: string | null;
  readonly worker: string;
  readonly host: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** The end of stderr (or of stdout when stderr is empty) of a failed attempt; empty otherwise. */
  readonly errorTail: string;
  /** Where the attempt's full output is (byte spans of log files under the state dir). */
  readonly logs: TaskResult['logs'];
  /** Outputs uploaded to S3 (key, size, checksum), when the run uploads any. */
  readonly uploaded?: TaskResult['uploaded'];
  /** How long the uploads took, in ms. */
  readonly uploadMs?: number;
  /** The size class the attempt was published to (`--classes`); absent: `default`. */
  readonly class?: string;
}

/** A phase reached its barrier (or was stopped). */
export interface PhaseEndRecord {
  readonly type: 'phase-end';
  readonly at: string;
  readonly phase: string;
  readonly succeeded: number;
  readonly failed: number;
  /** True when the phase was interrupted before every task had a final outcome. */
  readonly interrupted: boolean;
}

/** The run was cancelled (`tasker cancel`): what had no final outcome will not get one. */
export interface CancelRecord {
  readonly type: 'cancel';
  readonly at: string;
}

/** The tasker finished with this exit code. */
export interface RunEndRecord {
  readonly type: 'run-end';
  readonly at: string;
  readonly exitCode: number;
}

/** One line of a run's ledger (docs/ledger.md). */
export type LedgerRecord =
  | RunRecord
  | PlanRecord
  | PhaseRecord
  | OrderRecord
  | QueuedRecord
  | SpawnRecord
  | StartRecord
  | EndRecord
  | PhaseEndRecord
  | CancelRecord
  | RunEndRecord;

/** A record's `type`. */
export type RecordType = LedgerRecord['type'];

/** The record of one type: `RecordOf<'end'>` is an EndRecord. */
export type RecordOf<T extends RecordType> = Extract<LedgerRecord, { type: T }>;

/**
 * Every record type, for the reader to tell a record from a stray line. Checked against the
 * union: a type added to LedgerRecord and not here (or the other way) does not compile.
 */
export const RECORD_TYPES: ReadonlySet<string> = new Set(
  Object.keys({
    run: true,
    plan: true,
    phase: true,
    order: true,
    queued: true,
    spawn: true,
    start: true,
    end: true,
    'phase-end': true,
    cancel: true,
    'run-end': true,
  } satisfies Record<RecordType, true>),
);
