import parse from 'parse-duration';
import { InputError } from './errors.js';

/** One millisecond, the unit every duration in Warren is kept in. */
export const MILLISECOND = 1;
export const SECOND = 1000 * MILLISECOND;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;

/** Longest duration accepted: Node's timers overflow (and fire at once) beyond 2^31-1 ms. */
export const MAX_DURATION = 2 ** 31 - 1;

/**
 * Parses a human duration (`90s`, `5m`, `1h30m`, `250ms`) into milliseconds. A bare number
 * means seconds, as with `timeout(1)` and `sleep(1)`.
 */
export function parseDuration(text: string, what: string): number {
  const trimmed = text.trim();
  const value = /^\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) * SECOND : parse(trimmed);
  if (value === null || value === undefined || !Number.isFinite(value) || value < 0) {
    throw new InputError(
      'BAD_DURATION',
      `invalid ${what} \`${text}\`: expected a duration such as 30s, 5m or 1h30m`,
    );
  }
  if (value > MAX_DURATION) {
    throw new InputError(
      'BAD_DURATION',
      `invalid ${what} \`${text}\`: at most 24 days (a timer limit)`,
    );
  }
  return Math.round(value);
}

/** Formats milliseconds for people: `850ms`, `12.3s`, `4m05s`, `2h10m`. */
export function formatDuration(ms: number): string {
  if (ms < SECOND) return `${Math.round(ms)}ms`;
  if (ms < MINUTE) return `${(ms / SECOND).toFixed(1)}s`;
  if (ms < HOUR) {
    const m = Math.floor(ms / MINUTE);
    const s = Math.floor((ms % MINUTE) / SECOND);
    return `${m}m${String(s).padStart(2, '0')}s`;
  }
  const h = Math.floor(ms / HOUR);
  const m = Math.floor((ms % HOUR) / MINUTE);
  return `${h}h${String(m).padStart(2, '0')}m`;
}
