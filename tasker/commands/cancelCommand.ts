import { checkDirectory } from '../../shared/dirs.js';
import { EXIT } from '../../shared/errors.js';
import { loadBrokerCommandConfig, type TaskerFlags } from '../config.js';
import { latestRun } from '../ledger/index.js';
import { taskerLogger } from './taskerLog.js';

/** `tasker cancel`: cancels a run and says who was told. Reads the run and the broker. */
export async function cancelCommand(flags: TaskerFlags): Promise<number> {
  const config = loadBrokerCommandConfig(flags);
  checkDirectory(config.workdir, 'working directory');
  const log = await taskerLogger(config);
  const run = config.runId ?? (await latestRun(config.stateDir));
  // Loaded once the input is checked: its lock library and the broker's client are not small.
  const { cancelRun } = await import('./cancel.js');
  const done = await cancelRun(config, run, log);
  const how = [
    !done.taskerAsked
      ? 'recorded in its ledger'
      : done.taskerStopped
        ? 'its tasker stopped and recorded it'
        : 'its tasker is still stopping and records it when it has (`tasker status` says cancelling until then)',
    done.workersTold
      ? 'workers told to stop its tasks'
      : 'no broker configured, so no workers told',
  ];
  process.stdout.write(`cancelled run ${run}: ${how.join('; ')}\n`);
  return EXIT.OK;
}
