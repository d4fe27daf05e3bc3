import { failedResult } from '../../shared/failedResult.js';
import type { TaskResult } from '../../shared/protocol.js';
import type { TaskTable } from '../ledger/index.js';

/** A task's message may vanish this many times and be published again; then it fails (`lost`). */
export const MAX_VANISHED_AGAIN = 3;

/** What to do with tasks that vanished: publish these attempts again, record these failures. */
export interface VanishedPlan {
  /** `[task id, slot]` of each task to publish again; its row already awaits the new attempt. */
  readonly again: readonly (readonly [string, number])[];
  /** Final failures (`lost`) of tasks that vanished too often. */
  readonly failed: readonly TaskResult[];
}

/**
 * Decides for each vanished row: a new attempt that uses up none of the task's retries (the
 * row is moved on to it), or, after MAX_VANISHED_AGAIN times, a failure for good.
 */
export function planVanished(
  table: TaskTable,
  slots: readonly number[],
  where: { readonly run: string; readonly phase: string; readonly queue: string },
): VanishedPlan {
  const again: [string, number][] = [];
  const failed: TaskResult[] = [];
  for (const slot of slots) {
    const id = table.idOf(slot);
    if (table.vanished(slot) >= MAX_VANISHED_AGAIN) {
      failed.push(
        failedResult(
          { run: where.run, phase: where.phase, task: id, attempt: table.attempt(slot) },
          {
            failure: 'lost',
            reason: `its message vanished from ${where.queue} ${MAX_VANISHED_AGAIN + 1} times (purged, deleted, dropped by a broker policy, or held by a worker that sends no leases?)`,
            worker: '',
            host: '',
            startedAt: new Date().toISOString(),
          },
        ),
      );
      continue;
    }
    table.vanish(slot);
    again.push([id, slot]);
  }
  return { again, failed };
}

/** The one line said when tasks vanished; `again`: they are published again. */
export function vanishedLine(
  count: number,
  phase: string,
  queue: string,
  why: 'gone' | 'deleted',
  again: boolean,
): string {
  const tasks = `${count} task${count === 1 ? '' : 's'}`;
  const cause = why === 'deleted' ? 'deleted' : 'purged or deleted?';
  const them = count === 1 ? 'it' : 'them';
  return again
    ? `${tasks} of phase ${phase} vanished from ${queue} (${cause}); publishing ${them} again - use tasker cancel to stop a run`
    : `${tasks} of phase ${phase} vanished from ${queue} (${cause}); not publishing ${them} again (--lost-after 0) - resume the run without it to publish ${them}, or tasker cancel to stop it`;
}
