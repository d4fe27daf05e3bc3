import { checkDirectory } from '../../shared/dirs.js';
import { loadCollectConfig, type TaskerFlags } from '../config.js';
import { latestRun } from '../ledger/index.js';
import { taskerLogger } from './taskerLog.js';

/** `tasker collect`: records the results waiting in a run's queue. Reads the run and the broker. */
export async function collectCommand(
  flags: TaskerFlags & { readonly wait?: boolean; readonly json?: boolean },
): Promise<number> {
  const config = loadCollectConfig(flags);
  checkDirectory(config.workdir, 'working directory');
  const log = await taskerLogger(config);
  const run = config.runId ?? (await latestRun(config.stateDir));
  // Loaded once the input is checked: it brings the broker's client and the message schemas.
  const { collectRun } = await import('./collect.js');
  const collected = await collectRun(config, run, log.child({ run }), flags.wait ?? false);
  if (flags.json) process.stdout.write(`${JSON.stringify(collected)}\n`);
  return collected.exitCode;
}
