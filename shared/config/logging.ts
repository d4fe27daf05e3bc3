import type { LogFormat } from '../logger.js';
import { type Environment, oneOf, settingReader } from './read.js';

/** The flags that shape a process's log. */
export interface LogFlags {
  readonly logLevel?: string;
  readonly logFormat?: string;
}

/** How a process logs (pino). */
export interface LogSettings {
  /**
   * Least severe level written: `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`.
   * @defaultValue `info` (`WARREN_LOG_LEVEL`, `--log-level`)
   */
  readonly logLevel: string;
  /**
   * `pretty` (readable), `json` (one object a line), or `auto`: pretty on a TTY, JSON elsewhere.
   * @defaultValue `auto` (`WARREN_LOG_FORMAT`, `--log-format`)
   */
  readonly logFormat: LogFormat;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'pretty'];

/** Reads the log settings: defaults < environment < flags. */
export function loadLogging(flags: LogFlags, env: Environment = process.env): LogSettings {
  const read = settingReader(env);
  return Object.freeze({
    logLevel: oneOf(
      read.text(flags.logLevel, 'WARREN_LOG_LEVEL') ?? 'info',
      LOG_LEVELS,
      'log level',
    ),
    logFormat: oneOf(
      read.text(flags.logFormat, 'WARREN_LOG_FORMAT') ?? 'auto',
      LOG_FORMATS,
      'log format',
    ),
  });
}
