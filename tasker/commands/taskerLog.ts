import type { LogSettings } from '../../shared/config/logging.js';
import { createLogger, type Logger } from '../../shared/logger.js';

/** The logger of a tasker command that does work (`run`, `cancel`, `collect`...). */
export const taskerLogger = (settings: LogSettings): Promise<Logger> =>
  createLogger({
    level: settings.logLevel,
    format: settings.logFormat,
    bindings: { component: 'tasker' },
  });
