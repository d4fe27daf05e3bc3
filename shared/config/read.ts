import { parseDuration } from '../duration.js';
import { InputError } from '../errors.js';
import { RUN_ID_PATTERN } from '../protocol.js';

/** The environment a loader reads: `process.env` by default, a plain object in tests. */
export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * Reads one setting at a time, a flag over its environment variable (an empty variable counts
 * as unset), each validated only when a loader asks for it: a command never trips over a
 * setting it does not use.
 */
export interface SettingReader {
  readonly env: Environment;
  /** The flag, else the variable; undefined when neither is given. */
  text(flag: string | undefined, name: string): string | undefined;
  /** A whole number from `min` to `max`, else `fallback`. */
  count(
    flag: string | undefined,
    name: string,
    what: string,
    min: number,
    max: number,
    fallback: number,
  ): number;
  /** A duration in ms (`30s`, `5m`; a bare number is seconds), else `fallback`. */
  duration(flag: string | undefined, name: string, what: string, fallback: number): number;
}

/** A reader over one environment. */
export function settingReader(env: Environment): SettingReader {
  const text = (flag: string | undefined, name: string): string | undefined =>
    flag ?? (env[name] === '' ? undefined : env[name]);
  return {
    env,
    text,
    count(flag, name, what, min, max, fallback) {
      const given = text(flag, name);
      return given === undefined ? fallback : integer(given, what, min, max);
    },
    duration(flag, name, what, fallback) {
      const given = text(flag, name);
      return given === undefined ? fallback : parseDuration(given, what);
    },
  };
}

/** A whole number from `min` to `max`; throws InputError naming `what` otherwise. */
export function integer(text: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < min || Number(text) > max) {
    throw new InputError(
      'BAD_NUMBER',
      `invalid ${what} \`${text}\`: expected a whole number from ${min} to ${max}`,
    );
  }
  return Number(text);
}

/** One of `allowed`; throws InputError naming `what` otherwise. */
export function oneOf<T extends string>(text: string, allowed: readonly T[], what: string): T {
  if (!allowed.includes(text as T)) {
    throw new InputError(
      'BAD_CHOICE',
      `invalid ${what} \`${text}\`: expected one of ${allowed.join(', ')}`,
    );
  }
  return text as T;
}

/** A name made of letters, digits, `.`, `_` or `-` (as `pattern` says); InputError otherwise. */
export function matching(text: string, pattern: RegExp, what: string): string {
  if (!pattern.test(text))
    throw new InputError('BAD_NAME', `invalid ${what} \`${text}\`: use letters, digits, ., _ or -`);
  return text;
}

/** Validates a run id given by a person or the environment. */
export function checkRunId(id: string): string {
  if (!RUN_ID_PATTERN.test(id)) {
    throw new InputError(
      'BAD_RUN_ID',
      `invalid run id \`${id}\`: use 1-64 letters, digits, ., _ or -, starting with a letter or digit`,
    );
  }
  return id;
}
