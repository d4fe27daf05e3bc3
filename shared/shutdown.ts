import { EXIT } from './errors.js';
import type { Logger } from './logger.js';

/**
 * Calls `stop` on the first SIGINT or SIGTERM; a second signal exits at once. Returns a
 * function that removes the handlers.
 */
export function onShutdown(
  log: Logger,
  stop: (signal: NodeJS.Signals) => void | Promise<void>,
): () => void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn(`${signal} again: exiting now`);
      process.exit(EXIT.INTERRUPTED);
    }
    stopping = true;
    log.warn(`${signal}: stopping (send it again to exit at once)`);
    Promise.resolve(stop(signal)).catch((error: unknown) =>
      log.error({ err: error }, 'error while stopping'),
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
