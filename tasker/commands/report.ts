import { writeFileSync } from 'node:fs';
import { describeSystemError, EXIT, InputError } from '../../shared/errors.js';
import { formatBytes } from '../../shared/s3.js';
import { loadRunLookup, type TaskerFlags } from '../config.js';
import { latestRun } from '../ledger/index.js';
import { buildReport } from '../observe/index.js';

/** `tasker report`: one self-contained HTML file about a run. */
export async function reportCommand(
  flags: TaskerFlags & { readonly output?: string },
): Promise<number> {
  const config = loadRunLookup(flags);
  const run = config.runId ?? (await latestRun(config.stateDir));
  const html = await buildReport(config.stateDir, run);
  const output = flags.output ?? `warren-report-${run}.html`;
  try {
    writeFileSync(output, html);
  } catch (error) {
    throw new InputError(
      'OUTPUT_UNWRITABLE',
      `cannot write \`${output}\`: ${describeSystemError(error)}`,
    );
  }
  process.stdout.write(`wrote ${output} (run ${run}, ${formatBytes(Buffer.byteLength(html))})\n`);
  return EXIT.OK;
}
