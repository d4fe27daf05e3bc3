import { appendFileSync } from 'node:fs';
import { inject } from 'vitest';

/** What the fault suite counts, in the order of its closing table: key, label, required value. */
export const FIGURES = [
  ['tasksRun', 'tasks run', undefined],
  ['workersKilled', 'workers killed', undefined],
  ['brokerRestarts', 'broker restarts', undefined],
  ['taskerRestarts', 'tasker restarts', undefined],
  ['tasksLost', 'tasks lost', 0],
  ['recordedTwice', 'outcomes recorded twice', 0],
  ['poisonIsolated', 'poison tasks isolated', undefined],
  ['queuesEmptied', 'task queues purged or deleted', undefined],
  ['resultsLost', 'results deleted unread', undefined],
  ['resultsUnreadable', 'unreadable or foreign results', undefined],
  ['workersFrozen', 'workers frozen (SIGSTOP)', undefined],
  ['namesClashed', 'worker names claimed twice', undefined],
  ['badInputs', 'bad inputs tried', undefined],
] as const satisfies readonly (readonly [string, string, number | undefined])[];

export type Figure = (typeof FIGURES)[number][0];

/** Adds to the suite's figures (summed over all tests at the end). */
export function count(figures: Partial<Record<Figure, number>>): void {
  appendFileSync(inject('faultFigures'), `${JSON.stringify(figures)}\n`);
}
