import { EXIT, InputError } from '../../shared/errors.js';
import { fetchRun, formatBytes, runPrefix, s3Client } from '../../shared/s3.js';
import { loadFetchConfig, type TaskerFlags } from '../config.js';
import { latestRun } from '../ledger/index.js';

/** `tasker fetch DEST`: downloads a run's uploaded outputs from S3. */
export async function fetchCommand(
  dest: string,
  flags: TaskerFlags & { readonly glob?: string[]; readonly json?: boolean },
): Promise<number> {
  const config = loadFetchConfig(flags);
  const s3 = config.s3;
  if (!s3) {
    throw new InputError(
      'NO_BUCKET',
      'tasker fetch needs a bucket: set S3_BUCKET (and S3_ENDPOINT_URL for a non-AWS server) or --bucket',
    );
  }
  const run = config.runId ?? (await latestRun(config.stateDir));
  // Loaded only when globs are given: most fetches take everything.
  const picomatch = flags.glob?.length ? (await import('picomatch')).default : undefined;
  const match = picomatch?.(flags.glob ?? [], { dot: true });
  const done = await fetchRun({
    client: await s3Client(s3),
    settings: s3,
    run,
    dest,
    match,
  });
  const from = `s3://${s3.bucket}/${runPrefix(s3, run)}`;
  process.stdout.write(
    flags.json
      ? `${JSON.stringify({ run, from, dest, ...done })}\n`
      : `fetched run ${run} from ${from} into ${dest}: ${done.downloaded} file${done.downloaded === 1 ? '' : 's'} (${formatBytes(done.bytes)}), ${done.skipped} already there\n`,
  );
  return EXIT.OK;
}
