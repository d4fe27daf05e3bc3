import { existsSync, writeFileSync } from 'node:fs';
import lockfile from 'proper-lockfile';
import { SECOND } from '../../shared/duration.js';
import { describeSystemError, InfraError, InputError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { statePaths } from '../../shared/statePaths.js';
import type { BrokerCommandConfig } from '../config.js';
import { isRunActive, LedgerWriter, lockOptions } from '../ledger/index.js';
import { openTransport, usesBroker } from '../transports/index.js';

/** How long `tasker cancel` waits for a running tasker to stop. */
const STOP_WAIT_MS = 30 * SECOND;

/** How `tasker cancel` went, for its one line of output. */
export interface Cancelled {
  readonly run: string;
  /** A tasker was running the run and was asked to stop (it records the cancel itself). */
  readonly taskerAsked: boolean;
  /** That tasker stopped, and recorded the cancel, within `STOP_WAIT_MS`. */
  readonly taskerStopped: boolean;
  /** Workers were told over the control exchange. */
  readonly workersTold: boolean;
}

/**
 * Cancels a run: running tasks are stopped and queued ones dropped by the workers (told over the
 * control exchange), a tasker running the run stops (it sees the request file), and the ledger
 * says `cancel`: written by that tasker, or here when none is running.
 */
export async function cancelRun(
  config: BrokerCommandConfig,
  run: string,
  log: Logger,
): Promise<Cancelled> {
  const runDir = statePaths.runDir(config.stateDir, run);
  if (!existsSync(statePaths.ledger(config.stateDir, run))) {
    throw new InputError(
      'NO_SUCH_RUN',
      `no run \`${run}\` in \`${config.stateDir}\` (\`tasker cancel\` needs the run's state directory)`,
    );
  }
  const taskerRunning = await isRunActive(config.stateDir, run);
  if (taskerRunning)
    writeFileSync(statePaths.cancelRequest(config.stateDir, run), `${new Date().toISOString()}\n`);

  // Workers are told through the transport (without a broker there is nobody to tell: a local
  // tasker reads the request file).
  let workersTold = false;
  if (usesBroker(config)) {
    const { transport } = await openTransport(config, {
      run,
      log,
      name: `warren cancel ${run}`,
      purpose: 'control',
    });
    try {
      workersTold = await transport.announceCancel();
      // With no tasker left to collect them, results have nowhere to go; workers drop the tasks
      // of a run whose results queue is gone. (A running tasker does this itself.)
      if (!taskerRunning) await transport.finish('cancelled');
    } finally {
      await transport.close();
    }
  }

  if (!taskerRunning) {
    const release = await lockfile
      .lock(runDir, { ...lockOptions(config.stateDir, run), retries: 2 })
      .catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code === 'ELOCKED') {
          throw new InfraError(
            'RUN_LOCKED',
            `a tasker took run ${run} up while it was being cancelled; run \`tasker cancel --run-id ${run}\` again`,
          );
        }
        throw new InfraError(
          'STATE_UNWRITABLE',
          `cannot lock run \`${run}\` in \`${runDir}\`: ${describeSystemError(error)}`,
        );
      });
    try {
      const ledger = LedgerWriter.open(statePaths.ledger(config.stateDir, run));
      ledger.append({ type: 'cancel', at: new Date().toISOString() });
      ledger.close();
    } finally {
      await release();
    }
  }
  // A tasker asked to stop is waited for a while, so that what `tasker status` says next is
  // what the run ended as; one that takes longer (a task that ignores SIGTERM on a worker with
  // a long grace) is left to it: status says `cancelling` meanwhile.
  let taskerStopped = false;
  if (taskerRunning) {
    const deadline = Date.now() + STOP_WAIT_MS;
    while (!taskerStopped && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      taskerStopped = !(await isRunActive(config.stateDir, run));
    }
  }
  return { run, taskerAsked: taskerRunning, taskerStopped, workersTold };
}
