// Run ledgers in S3, so that the duration history of one state dir reaches another (a tasker on
// another machine, a fresh pod without the shared volume): each session of a run uploads its
// ledger when it ends, and a run's start fetches the ledgers it has not seen yet.
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Settings } from '../../shared/config/s3.js';
import { RUN_ID_PATTERN } from '../../shared/contract.js';
import { makeDirs } from '../../shared/dirs.js';
import { MINUTE, SECOND } from '../../shared/duration.js';
import type { Logger } from '../../shared/logger.js';
import {
  describeS3Error,
  downloadObject,
  formatBytes,
  listObjects,
  PART_SIZE,
  s3Client,
} from '../../shared/s3.js';
import { statePaths } from '../../shared/statePaths.js';

/** Longest a run's start spends on fetching ledgers: a slow bucket delays it by no more. */
export const FETCH_TIMEOUT = 30 * SECOND;
/** Longest a session's end spends on uploading its ledger (an interrupted pod has a grace period). */
export const UPLOAD_TIMEOUT = MINUTE;
/** Ledgers downloaded at once. */
const DOWNLOADS = 4;

/**
 * The bucket's folder of run ledgers: `<prefix>/.warren/ledgers/`. Beside the runs' outputs but
 * never among them: a run id starts with a letter or a digit, so no `<prefix>/<run>/<path>` key
 * begins with `.warren/`; and one listing of this folder finds every ledger without paging
 * through millions of outputs.
 */
export function ledgersPrefix(settings: S3Settings): string {
  return `${[settings.prefix, '.warren', 'ledgers'].filter((part) => part !== '').join('/')}/`;
}

/** The key of a run's ledger: `<prefix>/.warren/ledgers/<run>.jsonl`. */
export function ledgerKey(settings: S3Settings, run: string): string {
  return `${ledgersPrefix(settings)}${run}.jsonl`;
}

/** Uploads the run's ledger as it is now (the `run-end` of the session just closed included). */
export async function uploadLedger(options: {
  readonly settings: S3Settings;
  readonly stateDir: string;
  readonly run: string;
  readonly timeoutMs?: number;
}): Promise<{ key: string; bytes: number }> {
  const { settings, run } = options;
  const path = statePaths.ledger(options.stateDir, run);
  // What is there now: a tasker resuming the run at once appends past it, and uploads it next.
  const size = statSync(path).size;
  const key = ledgerKey(settings, run);
  const client = await s3Client(settings);
  const { Upload } = await import('@aws-sdk/lib-storage');
  const upload = new Upload({
    client,
    params: {
      Bucket: settings.bucket,
      Key: key,
      Body: size > 0 ? createReadStream(path, { end: size - 1 }) : '',
      ContentLength: size,
      ContentType: 'application/x-ndjson',
    },
    partSize: PART_SIZE,
    queueSize: 4,
  });
  const timer = setTimeout(() => void upload.abort(), options.timeoutMs ?? UPLOAD_TIMEOUT);
  try {
    await upload.done();
  } finally {
    clearTimeout(timer);
    client.destroy();
  }
  return { key, bytes: size };
}

/** How a fetch of ledgers went. */
export interface LedgersFetched {
  /** `s3://bucket/<prefix>/.warren/ledgers/`. */
  readonly from: string;
  /** Ledgers in the bucket of runs that are not in this state dir: what the history gains. */
  readonly ledgers: number;
  /** Of those, downloaded now (new, or changed since the last fetch); the rest were cached. */
  readonly fetched: number;
  readonly bytes: number;
  /** Ledgers in the bucket of this state dir's own runs: left out, the local one is read. */
  readonly local: number;
}

/** What was fetched, by run: the object's ETag and size when it was. */
type Fetched = Record<string, { readonly etag: string; readonly size: number }>;

function readFetched(path: string): Fetched {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return parsed && typeof parsed === 'object' ? (parsed as Fetched) : {};
  } catch {
    return {}; // none yet, or unreadable: everything is fetched again
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}

/**
 * Brings the state dir's copies of the bucket's ledgers (`history/s3/<run>.jsonl`) up to date:
 * one listing, and a download of only the ledgers that are new or changed (another ETag or
 * size) since the last fetch. Ledgers of runs this state dir has itself are left out. The
 * duration history then reads these copies as it reads the local ledgers. Throws on an S3 error
 * or after `timeoutMs`; what was downloaded by then is kept.
 */
export async function fetchLedgers(options: {
  readonly settings: S3Settings;
  readonly stateDir: string;
  readonly timeoutMs?: number;
}): Promise<LedgersFetched> {
  const { settings, stateDir } = options;
  const prefix = ledgersPrefix(settings);
  const dir = statePaths.s3Ledgers(stateDir);
  const manifest = join(dir, 'fetched.json');
  const fetched = readFetched(manifest);
  const abortSignal = AbortSignal.timeout(options.timeoutMs ?? FETCH_TIMEOUT);
  const client = await s3Client(settings);
  const wanted: { run: string; key: string; etag: string; size: number }[] = [];
  let ledgers = 0;
  let local = 0;
  let bytes = 0;
  let changed = false;
  try {
    for await (const object of listObjects(client, settings.bucket, prefix, { abortSignal })) {
      const name = (object.Key ?? '').slice(prefix.length);
      const run = name.endsWith('.jsonl') ? name.slice(0, -'.jsonl'.length) : '';
      if (!RUN_ID_PATTERN.test(run)) continue; // not a ledger Warren put there
      if (sizeOf(statePaths.ledger(stateDir, run)) >= 0) {
        local++;
        continue;
      }
      ledgers++;
      const etag = object.ETag ?? '';
      const size = object.Size ?? 0;
      const known = fetched[run];
      const copy = join(dir, `${run}.jsonl`);
      if (known?.etag === etag && known.size === size && sizeOf(copy) === size) continue;
      wanted.push({ run, key: object.Key as string, etag, size });
    }
    if (wanted.length > 0) makeDirs(dir);
    const download = async (item: (typeof wanted)[number]) => {
      // Two taskers of the state dir may fetch at once: each its own partial file, the last
      // rename stays (both are the same object).
      await downloadObject(client, settings.bucket, item.key, {
        target: join(dir, `${item.run}.jsonl`),
        partial: join(dir, `.${item.run}.jsonl.${process.pid}.partial`),
        abortSignal,
      });
      fetched[item.run] = { etag: item.etag, size: item.size };
      changed = true;
      bytes += item.size;
    };
    const queue = [...wanted];
    await Promise.all(
      Array.from({ length: Math.min(DOWNLOADS, queue.length) }, async () => {
        for (let item = queue.shift(); item; item = queue.shift()) await download(item);
      }),
    );
  } finally {
    client.destroy();
    // What was downloaded before a failure counts next time too.
    if (changed) await writeFile(manifest, `${JSON.stringify(fetched)}\n`);
  }
  return {
    from: `s3://${settings.bucket}/${prefix}`,
    ledgers,
    fetched: wanted.length,
    bytes,
    local,
  };
}

/**
 * `fetchLedgers`, said in one info line, or one warn line on failure: history is an
 * optimisation, so the run goes on with what the state dir has.
 */
export async function fetchLedgersFor(
  settings: S3Settings,
  stateDir: string,
  log: Logger,
): Promise<LedgersFetched | undefined> {
  const from = `s3://${settings.bucket}/${ledgersPrefix(settings)}`;
  try {
    const done = await fetchLedgers({ settings, stateDir });
    const own = done.local > 0 ? `; ${done.local} of this state dir's own runs left out` : '';
    log.info(
      `history: ${done.ledgers} ledger${done.ledgers === 1 ? '' : 's'} from ${from} (${done.fetched} fetched now, ${formatBytes(done.bytes)}${own})`,
    );
    return done;
  } catch (error) {
    const why = (error as Error).name === 'TimeoutError' ? 'timed out' : describeS3Error(error);
    log.warn(
      `history: cannot fetch ledgers from ${from}: ${why}; going on with this state dir's history`,
    );
    return undefined;
  }
}

/**
 * `uploadLedger`, said in one info line, or one warn line on failure: the run's outcome and exit
 * code are what they were either way.
 */
export async function uploadLedgerFor(
  settings: S3Settings,
  stateDir: string,
  run: string,
  log: Logger,
): Promise<void> {
  const key = ledgerKey(settings, run);
  try {
    const { bytes } = await uploadLedger({ settings, stateDir, run });
    log.info(`ledger uploaded to s3://${settings.bucket}/${key} (${formatBytes(bytes)})`);
  } catch (error) {
    const why = (error as Error).name === 'AbortError' ? 'timed out' : describeS3Error(error);
    log.warn(
      `cannot upload the ledger to s3://${settings.bucket}/${key}: ${why}; other state dirs will not see this run's durations`,
    );
  }
}
