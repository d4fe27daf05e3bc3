// What `split`, `run` and `send` are told about the jobs file: phase rules and sweeps, checked
// before anything is read or recorded.
import { accessSync, constants, statSync } from 'node:fs';
import { quote } from 'shell-quote';
import { describeSystemError, InputError } from '../../shared/errors.js';
import { type RuleSet, resolveRules, type SweepSource } from '../jobs/index.js';

/** `--params CSV` or `--seq N`: one task per row or number, filling a command template. */
export interface SweepFlags {
  readonly params?: string;
  readonly seq?: string;
}

/** `--rules NAME`, or phases by regex, with a phase for the rest and serial phases. */
export interface RuleFlags {
  readonly rules?: string;
  readonly phase?: readonly string[];
  readonly rest?: string;
  readonly serial?: readonly string[];
}

/** The phase rules the flags ask for; throws InputError on an unknown or bad rule. */
export const rulesOf = (flags: RuleFlags): RuleSet =>
  resolveRules({ rules: flags.rules, phases: flags.phase, rest: flags.rest, serial: flags.serial });

/** The sweep asked for, checked; undefined when none. */
export async function sweepOf(flags: SweepFlags): Promise<SweepSource | undefined> {
  if (flags.params !== undefined) {
    try {
      accessSync(flags.params, constants.R_OK);
      if (statSync(flags.params).isDirectory())
        throw Object.assign(new Error(), { code: 'EISDIR' });
    } catch (error) {
      throw new InputError(
        'PARAMS_UNREADABLE',
        `cannot read parameters \`${flags.params}\`: ${describeSystemError(error)}`,
      );
    }
    return { kind: 'params', file: flags.params };
  }
  if (flags.seq !== undefined) {
    if (!/^\d+$/.test(flags.seq) || Number(flags.seq) < 1 || Number(flags.seq) > 10_000_000) {
      throw new InputError(
        'BAD_NUMBER',
        `invalid --seq \`${flags.seq}\`: expected a whole number from 1 to 10000000`,
      );
    }
    return { kind: 'seq', count: Number(flags.seq) };
  }
  return undefined;
}

/** The sweep flags as the ledger records them in the run's command line. */
export const sweepText = (flags: SweepFlags): string =>
  flags.params !== undefined
    ? ` --params ${quote([flags.params])}`
    : flags.seq !== undefined
      ? ` --seq ${flags.seq}`
      : '';
