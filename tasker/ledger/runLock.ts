import lockfile from 'proper-lockfile';
import { SECOND } from '../../shared/duration.js';
import { statePaths } from '../../shared/statePaths.js';

/**
 * Timings of a run's lock. The tasker holding it touches it every `updateMs`; a lock not
 * touched for `staleMs` is a killed tasker's, and the next one takes it over.
 */
export const LOCK = { staleMs: 5 * SECOND, updateMs: SECOND } as const;

/** Where a run's lock is and how old it may get: the options every lock call of a run shares. */
export function lockOptions(stateDir: string, run: string) {
  return { lockfilePath: statePaths.lock(stateDir, run), stale: LOCK.staleMs } as const;
}

/** Whether a tasker holds the run now (a stale lock, or none, is no tasker). */
export function isRunActive(stateDir: string, run: string): Promise<boolean> {
  return lockfile
    .check(statePaths.runDir(stateDir, run), lockOptions(stateDir, run))
    .catch(() => false);
}
