import { realpathSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { loadPaths, type PathFlags } from '../../shared/config/paths.js';
import { describeSystemError, EXIT, InfraError, InputError } from '../../shared/errors.js';

const isInside = (child: string, parent: string) =>
  child === parent || child.startsWith(parent + sep);

function real(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Empties a working directory, as asreview-cloud's tasker did with `rm -rf`, but refuses `/`,
 * the home directory and its parents, never follows a symlink out of the directory, and keeps
 * the state dirs it is given (so a run's ledger survives the clean that starts it), refusing to
 * clean one of them or anything in one. Returns what it removed.
 */
export async function cleanDir(
  dir: string,
  stateDirs: readonly string[],
  home = homedir(),
): Promise<string[]> {
  const target = real(dir);
  if (!target) throw new InputError('CLEAN_MISSING', `cannot clean \`${dir}\`: no such directory`);
  if (!(await stat(target)).isDirectory())
    throw new InputError('CLEAN_NOT_DIR', `cannot clean \`${dir}\`: not a directory`);
  const homeReal = real(home) ?? home;
  if (target === sep || isInside(homeReal, target)) {
    throw new InputError(
      'CLEAN_REFUSED',
      `refusing to clean \`${dir}\`: it is ${target === sep ? 'the root directory' : 'the home directory or one of its parents'}`,
    );
  }
  const keep = stateDirs.map((stateDir) => real(stateDir) ?? resolve(stateDir));
  if (keep.some((stateDir) => isInside(target, stateDir))) {
    throw new InputError(
      'CLEAN_REFUSED',
      `refusing to clean \`${dir}\`: it is the state dir, or inside it (run ledgers live there)`,
    );
  }
  const removed: string[] = [];
  const empty = async (folder: string): Promise<void> => {
    for (const entry of await readdir(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (keep.includes(path)) continue;
      // A folder holding a state dir is emptied around it, not removed.
      if (entry.isDirectory() && keep.some((stateDir) => isInside(stateDir, path))) {
        await empty(path);
        continue;
      }
      await rm(path, { recursive: true, force: true }); // removes symlinks, never their targets
      removed.push(relative(target, path));
    }
  };
  try {
    await empty(target);
  } catch (error) {
    throw new InfraError('CLEAN_FAILED', `cannot clean \`${dir}\`: ${describeSystemError(error)}`, {
      cause: error,
    });
  }
  return removed;
}

/** `tasker clean DIR`: empties DIR and says how much it removed. Reads the paths only. */
export async function cleanCommand(dir: string, flags: PathFlags): Promise<number> {
  // Keep both the state dir of the directory being cleaned and the one in force here.
  const here = loadPaths(flags);
  const there = loadPaths({ ...flags, workdir: dir });
  const removed = await cleanDir(dir, [here.stateDir, there.stateDir]);
  process.stdout.write(
    `emptied ${dir}: removed ${removed.length} entr${removed.length === 1 ? 'y' : 'ies'}\n`,
  );
  return EXIT.OK;
}
