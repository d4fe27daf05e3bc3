import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describeSystemError, InputError } from './errors.js';

/**
 * `mkdir -p`, one level at a time. Node's own `mkdirSync(path, { recursive: true })` loops
 * forever on some paths (under /proc, for one: mkdir fails with ENOENT though the parent
 * exists), which would hang a tasker given a bad --state-dir; this fails with the error.
 */
export function makeDirs(path: string): void {
  const target = resolve(path);
  try {
    if (statSync(target).isDirectory()) return;
  } catch {
    // missing: make it below
  }
  const parent = dirname(target);
  if (parent !== target) makeDirs(parent);
  try {
    mkdirSync(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(target).isDirectory())
      throw error;
  }
}

/** Fails with one clear line (exit 2) unless `dir` is an existing directory. */
export function checkDirectory(dir: string, what: string): void {
  let isDirectory = false;
  try {
    isDirectory = statSync(dir).isDirectory();
  } catch (error) {
    throw new InputError('NO_SUCH_DIR', `${what} \`${dir}\`: ${describeSystemError(error)}`);
  }
  if (!isDirectory) throw new InputError('NOT_A_DIR', `${what} \`${dir}\`: not a directory`);
}
