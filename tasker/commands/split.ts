import { EXIT } from '../../shared/errors.js';
import { splitToParts } from '../jobs/index.js';
import { type RuleFlags, rulesOf } from './jobsFlags.js';

/** `tasker split JOBS`: writes one file per phase and lists them. Reads no configuration. */
export async function splitCommand(
  jobs: string,
  flags: RuleFlags & { readonly outDir?: string },
): Promise<number> {
  const rules = rulesOf(flags);
  const parts = await splitToParts(jobs, rules, flags.outDir);
  const width = Math.max(...parts.map((part) => part.file.length));
  const nameWidth = Math.max(...parts.map((part) => part.name.length));
  for (const part of parts) {
    process.stdout.write(
      `${part.file.padEnd(width)}  ${part.name.padEnd(nameWidth)}  ${part.kind.padEnd(8)}  ${part.lines} line${part.lines === 1 ? '' : 's'}\n`,
    );
  }
  return EXIT.OK;
}
