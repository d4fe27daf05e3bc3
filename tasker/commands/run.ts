// `tasker run`, `send` and `once`: each checks its input, reads the run settings and the broker,
// and hands a plan to runPhases.
import { quote } from 'shell-quote';
import { checkDirectory } from '../../shared/dirs.js';
import { InputError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { loadRunConfig, type RunConfig, type TaskerFlags } from '../config.js';
import {
  checkPhaseName,
  checkReadable,
  phaseNameOf,
  planOnce,
  planRun,
  planSweep,
  singlePhase,
} from '../jobs/index.js';
import { type RuleFlags, rulesOf, type SweepFlags, sweepOf, sweepText } from './jobsFlags.js';
import { runPhases } from './runPhases.js';
import { taskerLogger } from './taskerLog.js';

/** The run settings and logger of a command that runs tasks (`run`, `send`, `once`, `rerun`). */
export async function setUp(flags: TaskerFlags): Promise<{ config: RunConfig; log: Logger }> {
  const config = loadRunConfig(flags);
  checkDirectory(config.workdir, 'working directory');
  // On a broker the workers upload, with their own bucket; here the tasker's slots do.
  if (config.upload.length > 0 && !config.s3 && (!config.broker || config.local)) {
    throw new InputError(
      'NO_BUCKET',
      '--upload needs a bucket: set S3_BUCKET (and S3_ENDPOINT_URL for a non-AWS server) or --bucket',
    );
  }
  if (config.classes.length > 0 && (!config.broker || config.local)) {
    throw new InputError(
      'CLASSES_LOCAL',
      `size classes need workers: --classes ${config.classes.join(',')} moves tasks between worker queues, and in local mode there are none (set RABBITMQ_URL, or leave out --classes)`,
    );
  }
  return { config, log: await taskerLogger(config) };
}

/** `tasker run JOBS`: every phase of a jobs file in order, with a barrier between phases. */
export async function runCommand(
  jobs: string,
  flags: TaskerFlags & RuleFlags & SweepFlags,
): Promise<number> {
  const rules = rulesOf(flags);
  await checkReadable(jobs, rules);
  const sweep = await sweepOf(flags);
  const { config, log } = await setUp(flags);
  return runPhases(config, log, {
    command: `run ${quote([jobs])}${flags.rules ? ` --rules ${flags.rules}` : ''}${sweepText(flags)}`,
    plan: (run) => planRun(jobs, rules, run, config.stateDir, sweep),
    // asreview-cloud's parts hold lines that read what earlier lines of the same part write
    // (docs/jobs-files.md): file order unless asked, so a merge does not go out first.
    defaultOrder: flags.rules === 'asreview-cloud' ? 'file' : undefined,
  });
}

/**
 * `tasker send FILE`: every line of a file (or every row of a sweep) as one phase, parallel,
 * or serial in the tasker with `--serial`.
 */
export async function sendCommand(
  file: string,
  flags: TaskerFlags &
    SweepFlags & { readonly phase?: string; readonly wait: boolean; readonly serial?: boolean },
): Promise<number> {
  const sweep = await sweepOf(flags);
  const name = checkPhaseName(flags.phase ?? (sweep ? 'sweep' : phaseNameOf(file)));
  const kind = flags.serial ? 'serial' : 'parallel';
  const rules = singlePhase(name, file, kind);
  if (!sweep) await checkReadable(file);
  const { config, log } = await setUp(flags);
  if (!flags.wait && (!config.broker || config.local)) {
    throw new InputError(
      'NO_WAIT_LOCAL',
      '--no-wait needs a broker (RABBITMQ_URL): in local mode nothing would run the tasks',
    );
  }
  return runPhases(config, log, {
    command: `send ${quote([file])} --phase ${name}${flags.serial ? ' --serial' : ''}${sweepText(flags)}${flags.wait ? '' : ' --no-wait'}`,
    plan: async (run) =>
      sweep
        ? [await planSweep(file, sweep, name, run, config.stateDir, kind)]
        : planRun(file, rules, run, config.stateDir),
    noWait: !flags.wait,
  });
}

/** `tasker once NAME -- COMMAND`: one serial step, skipped if it already succeeded in the run. */
export async function onceCommand(
  name: string,
  words: string[],
  flags: TaskerFlags,
): Promise<number> {
  const step = checkPhaseName(name);
  const command = words.length === 1 ? (words[0] as string) : quote(words);
  if (command.trim() === '')
    throw new InputError('EMPTY_COMMAND', `step \`${name}\` has an empty command`);
  const { config, log } = await setUp(flags);
  return runPhases(config, log, {
    command: `once ${step} -- ${command}`,
    plan: async (run) => [planOnce(step, command, run, config.stateDir)],
  });
}
