import { EXIT } from '../../shared/errors.js';
import { loadRunLookup, type TaskerFlags } from '../config.js';
import { latestRun } from '../ledger/index.js';
import { formatGroups, formatStatus, groupFailures, runStatus } from '../observe/index.js';

/** The flags of `tasker status`. */
export interface StatusFlags extends TaskerFlags {
  readonly json?: boolean;
  readonly failed?: boolean;
  readonly watch?: boolean;
}

/**
 * `tasker status`: a run's phases and tasks, once or (`--watch`) until it ends. Reads the state
 * directory and the run id only: no broker, worker or run setting can stop it.
 */
export async function statusCommand(flags: StatusFlags): Promise<number> {
  const config = loadRunLookup(flags);
  const run = config.runId ?? (await latestRun(config.stateDir));
  const render = async () => {
    const status = await runStatus(config.stateDir, run);
    // With --failed, the failed tasks grouped by cause come after them (failureGroups.ts).
    const groups = flags.failed ? groupFailures(status.tasks) : undefined;
    if (!flags.json) {
      const text = formatStatus(status, flags.failed ?? false, {
        stateDir: config.stateDir,
        cwd: process.cwd(),
      });
      return { status, text: groups ? `${text}${formatGroups(groups)}` : text };
    }
    const tasks = flags.failed
      ? status.tasks.filter((task) => task.state === 'failed')
      : status.tasks;
    return {
      status,
      text: `${JSON.stringify({ ...status, tasks, ...(groups ? { groups } : {}) }, null, 2)}\n`,
    };
  };
  let shown = '';
  for (;;) {
    const { status, text } = await render();
    if (!flags.watch) {
      process.stdout.write(text);
      return EXIT.OK;
    }
    if (process.stdout.isTTY) {
      // Home, clear the screen, draw: the status stays in place.
      process.stdout.write(`\x1b[H\x1b[2J${text}`);
    } else if (text !== shown) {
      // Elsewhere (a pipe, kubectl logs): each change once.
      process.stdout.write(`${shown ? '\n' : ''}${text}`);
    }
    shown = text;
    if (status.state !== 'running' && status.state !== 'cancelling') return EXIT.OK;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}
