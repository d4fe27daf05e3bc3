import { isAbsolute, resolve } from 'node:path';
import { type Environment, settingReader } from './read.js';

/** The flags that place the working and state directories. */
export interface PathFlags {
  readonly workdir?: string;
  readonly stateDir?: string;
}

/** Where both processes work: the directory tasks run in and the one Warren keeps state in. */
export interface Paths {
  /**
   * Directory tasks run in: the shared volume in a pod.
   * @defaultValue the current directory (`WARREN_WORKDIR`, `--workdir`)
   */
  readonly workdir: string;
  /**
   * Where run ledgers and task logs live. A relative path is taken from the current directory,
   * not the working directory, as a shell user expects.
   * @defaultValue `.warren` in the working directory (`WARREN_STATE_DIR`, `--state-dir`)
   */
  readonly stateDir: string;
}

/** Reads the working and state directories: defaults < environment < flags. */
export function loadPaths(
  flags: PathFlags,
  env: Environment = process.env,
  cwd = process.cwd(),
): Paths {
  const read = settingReader(env);
  const workdir = resolve(cwd, read.text(flags.workdir, 'WARREN_WORKDIR') ?? '.');
  const stateDir = read.text(flags.stateDir, 'WARREN_STATE_DIR');
  return Object.freeze({
    workdir,
    stateDir: stateDir
      ? isAbsolute(stateDir)
        ? stateDir
        : resolve(cwd, stateDir)
      : resolve(workdir, '.warren'),
  });
}
