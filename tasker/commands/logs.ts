import { EXIT } from '../../shared/errors.js';
import { loadRunLookup, type TaskerFlags } from '../config.js';
import { latestRun } from '../ledger/index.js';
import { showLogs } from '../observe/index.js';

/** `tasker logs TASK`: a task's stdout and stderr; `--follow` until it ends. */
export async function logsCommand(
  query: string,
  flags: TaskerFlags & { readonly follow?: boolean },
): Promise<number> {
  const config = loadRunLookup(flags);
  const run = config.runId ?? (await latestRun(config.stateDir));
  await showLogs({
    stateDir: config.stateDir,
    run,
    query,
    follow: flags.follow ?? false,
    streams: {
      out: (bytes) => process.stdout.write(bytes),
      err: (bytes) => process.stderr.write(bytes),
    },
    note: (line) => process.stderr.write(`tasker: ${line}\n`),
    cwd: process.cwd(),
  });
  return EXIT.OK;
}
