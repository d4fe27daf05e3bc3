import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { describeSystemError, InfraError } from '../../shared/errors.js';
import { statePaths } from '../../shared/statePaths.js';

/**
 * The run's stamp: read from the run's directory, or made there when the run has none yet (a
 * new run, or one started before stamps). It stays for the run's life, across resumes, and goes
 * with every task (header `warren-stamp`): a worker whose state dir holds another stamp, or
 * none, does not share the run's working directory and gives its tasks back. A token rather
 * than the run id alone: two directories may each hold a run of one name (`WARREN_RUN_ID=study`).
 */
export function runStamp(stateDir: string, run: string): string {
  const path = statePaths.stamp(stateDir, run);
  try {
    const stamp = readFileSync(path, 'utf8').trim();
    if (stamp !== '') return stamp;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw unwritable(path, error);
  }
  const stamp = randomBytes(8).toString('hex');
  try {
    // The run is locked: no other tasker writes one meanwhile. Renamed into place, so that a
    // worker never reads half of it.
    writeFileSync(`${path}.tmp`, `${stamp}\n`);
    renameSync(`${path}.tmp`, path);
  } catch (error) {
    throw unwritable(path, error);
  }
  return stamp;
}

function unwritable(path: string, error: unknown): InfraError {
  return new InfraError(
    'STATE_UNWRITABLE',
    `cannot write the run's stamp \`${path}\`: ${describeSystemError(error)}`,
    { cause: error },
  );
}
