import { medianOf } from '../history/index.js';
import { type PhasePlan, readSpool, type SpooledTask, SpoolReader } from '../jobs/index.js';

/**
 * The order a parallel phase's tasks are published in: `longest` expected first (from how long
 * each command took in earlier runs of the state dir), or `file` order. Serial phases always run
 * in file order.
 */
export type PublishOrder = 'longest' | 'file';

/** A task of a phase as it is published, with how long it is expected to take. */
export interface OrderedTask extends SpooledTask {
  /** How long the command took the last time it succeeded, in ms; undefined: never did. */
  readonly expectedMs: number | undefined;
}

/** A phase's tasks in the order they go out. */
export interface PhaseOrder {
  /** The order used: `longest` only when some task of the phase has a history. */
  readonly by: PublishOrder;
  /** Tasks of the phase file with a duration from earlier runs, and without one. */
  readonly known: number;
  readonly unknown: number;
  /** The known tasks' durations, together, in ms. */
  readonly knownMs: number;
  /** The median of the known durations: what a task without one is expected to take. */
  readonly medianMs: number;
  /** The phase file's tasks in that order (one pass over the file each time). */
  tasks(): AsyncGenerator<OrderedTask>;
}

const UNKNOWN = -1;

/**
 * Orders a phase's tasks. With `longest`, tasks with no history go first, in file order (one of
 * them may be the longest of all: started last, it would be the phase's tail), then the known
 * ones, longest first, ties in file order; that is LPT, which ends a phase within 4/3 of the best
 * order's time when the durations hold. A phase file is read once here (commands are hashed, not
 * kept: 16 bytes a task), and its lines read back by offset as they are published. With no
 * history at all nothing is read ahead.
 */
export async function orderPhase(
  phase: PhasePlan,
  wanted: PublishOrder,
  expected: ((command: string) => number | undefined) | undefined,
): Promise<PhaseOrder> {
  if (!expected || phase.kind === 'serial') {
    return {
      by: 'file',
      known: 0,
      unknown: phase.total,
      knownMs: 0,
      medianMs: 0,
      tasks: async function* () {
        for await (const task of readSpool(phase.spool)) yield { ...task, expectedMs: undefined };
      },
    };
  }
  let offsets = new Float64Array(1024);
  let lengths = new Uint32Array(1024);
  let durations = new Float64Array(1024);
  let count = 0;
  let knownMs = 0;
  const known: number[] = [];
  for await (const task of readSpool(phase.spool)) {
    if (count === offsets.length) {
      offsets = grow(offsets, new Float64Array(count * 2));
      lengths = grow(lengths, new Uint32Array(count * 2));
      durations = grow(durations, new Float64Array(count * 2));
    }
    const ms = expected(task.command);
    offsets[count] = task.offset;
    lengths[count] = task.length;
    durations[count] = ms ?? UNKNOWN;
    if (ms !== undefined) {
      known.push(ms);
      knownMs += ms;
    }
    count++;
  }
  const by: PublishOrder = wanted === 'longest' && known.length > 0 ? 'longest' : 'file';
  const order = Uint32Array.from({ length: count }, (_, i) => i);
  if (by === 'longest') {
    order.sort((a, b) => {
      const da = durations[a] ?? UNKNOWN;
      const db = durations[b] ?? UNKNOWN;
      if (da === UNKNOWN || db === UNKNOWN) {
        if (da !== db) return da === UNKNOWN ? -1 : 1;
      } else if (da !== db) return db - da;
      return a - b;
    });
  }
  return {
    by,
    known: known.length,
    unknown: count - known.length,
    knownMs,
    medianMs: medianOf(known),
    tasks: async function* () {
      if (by === 'file') {
        // In file order: streamed again, beside the durations read the first time.
        let i = 0;
        for await (const task of readSpool(phase.spool)) {
          const ms = durations[i++] ?? UNKNOWN;
          yield { ...task, expectedMs: ms === UNKNOWN ? undefined : ms };
        }
        return;
      }
      const reader = new SpoolReader(phase.spool);
      try {
        for (const i of order) {
          const offset = offsets[i] ?? 0;
          const length = lengths[i] ?? 0;
          const [id, command] = reader.line(offset, length);
          const ms = durations[i] ?? UNKNOWN;
          yield { id, command, offset, length, expectedMs: ms === UNKNOWN ? undefined : ms };
        }
      } finally {
        reader.close();
      }
    },
  };
}

function grow<T extends Float64Array | Uint32Array>(from: T, to: T): T {
  to.set(from);
  return to;
}
