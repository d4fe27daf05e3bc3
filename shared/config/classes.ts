import { InputError } from '../errors.js';
import { CLASS_NAME_PATTERN, DEFAULT_CLASS } from '../topology.js';
import { type Environment, settingReader } from './read.js';

/** Most size classes a run may list (the tasker keeps a task's class in 4 bits). */
export const MAX_CLASSES = 16;

function checkClass(name: string, what: string): string {
  if (!CLASS_NAME_PATTERN.test(name))
    throw new InputError(
      'BAD_CLASS',
      `invalid ${what} \`${name}\`: use 1-31 lowercase letters, digits or -, starting with a letter or digit`,
    );
  return name;
}

/**
 * The size class a worker serves (`WARREN_CLASS`, `--class`): it consumes that class's queue.
 * @defaultValue `default` (the task queue itself)
 */
export function loadClass(env: Environment, flag: string | undefined): string {
  return checkClass(settingReader(env).text(flag, 'WARREN_CLASS') ?? DEFAULT_CLASS, 'size class');
}

/**
 * The size classes of a run, smallest first (`WARREN_CLASSES`, `--classes`): a task the OOM
 * killer killed is published again to the next one. The first is `default`.
 * @defaultValue none: an OOM kill fails its attempt, as any failure does
 */
export function loadClasses(env: Environment, flag: string | undefined): readonly string[] {
  const text = settingReader(env).text(flag, 'WARREN_CLASSES');
  if (text === undefined) return [];
  const names = text.split(',').map((name) => checkClass(name.trim(), 'size class'));
  if (names[0] !== DEFAULT_CLASS)
    throw new InputError(
      'BAD_CLASSES',
      `invalid size classes \`${text}\`: the first is \`${DEFAULT_CLASS}\`, where every task starts (--classes ${DEFAULT_CLASS},${names.filter((name) => name !== DEFAULT_CLASS).join(',')})`,
    );
  if (new Set(names).size !== names.length)
    throw new InputError('BAD_CLASSES', `invalid size classes \`${text}\`: a class is named twice`);
  if (names.length > MAX_CLASSES)
    throw new InputError(
      'BAD_CLASSES',
      `invalid size classes \`${text}\`: at most ${MAX_CLASSES} classes`,
    );
  // One class is no class to move to: the same as none.
  return Object.freeze(names.length > 1 ? names : []);
}
