import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { _Object, S3Client } from '@aws-sdk/client-s3';
import type { S3Settings } from './config/s3.js';
import { makeDirs } from './dirs.js';
import { InfraError, InputError } from './errors.js';
import type { UploadedObject } from './protocol.js';

/** Files above this go up in parts (lib-storage's multipart upload). */
export const PART_SIZE = 8 * 1024 * 1024;

/**
 * A task's outputs are the files matching its globs that it created or changed: modified at
 * or after its start, less this much (coarse file system clocks, NFS servers).
 */
export const MTIME_SLACK_MS = 2000;

/** Uploaded files remembered per process (the oldest are forgotten first). */
const SEEN_KEPT = 100_000;

/** The key of a run's file: `<prefix>/<run>/<path>`, or `<run>/<path>` with no prefix. */
export function objectKey(settings: S3Settings, run: string, path: string): string {
  const rel = path.split(sep).join('/');
  return [settings.prefix, run, rel].filter((part) => part !== '').join('/');
}

/** The key prefix of a run's files, ending in `/`. */
export function runPrefix(settings: S3Settings, run: string): string {
  return `${[settings.prefix, run].filter((part) => part !== '').join('/')}/`;
}

/**
 * An S3 client for AWS or any S3-speaking server: with an endpoint set, path-style addressing
 * and checksums only where the API requires them (MinIO, Ceph, Scaleway, GCS interoperability
 * and s3rver reject or mangle the SDK's default CRC32 checksums). Loaded on first use, so
 * that runs without S3 never load the SDK.
 */
export async function s3Client(settings: S3Settings): Promise<S3Client> {
  // Warren supports Node 20 (engines); the SDK's notice about its future Node 22 floor would
  // print on every worker start.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { S3Client } = await import('@aws-sdk/client-s3');
  const custom = settings.endpoint !== undefined;
  return new S3Client({
    region: settings.region,
    ...(custom ? { endpoint: settings.endpoint, forcePathStyle: true } : {}),
    ...(custom
      ? { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' }
      : {}),
    ...(settings.accessKeyId && settings.secretAccessKey
      ? {
          credentials: {
            accessKeyId: settings.accessKeyId,
            secretAccessKey: settings.secretAccessKey,
          },
        }
      : {}),
    maxAttempts: 5,
  });
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return `sha256:${hash.digest('hex')}`;
}

/** One line about an S3 error: its code and message, never a stack. */
export function describeS3Error(error: unknown): string {
  const e = error as { name?: string; Code?: string; message?: string; code?: string };
  const code = e.Code ?? e.name ?? e.code;
  const message = e.message && e.message !== code ? e.message : '';
  return [code, message].filter(Boolean).join(': ') || String(error);
}

/**
 * Uploads a task's outputs: the files under `workdir` matching `globs` that were modified at or
 * after `since` (its start), never those under `exclude` (the state dir). Throws on the first
 * file that cannot be uploaded (after the SDK's retries), naming it.
 */
export async function uploadOutputs(options: {
  readonly client: S3Client;
  readonly settings: S3Settings;
  readonly run: string;
  readonly workdir: string;
  readonly globs: readonly string[];
  readonly since: number;
  readonly exclude?: string;
  /**
   * Files this process uploaded, with their mtime and size: a file another slot's task wrote
   * and uploaded is not uploaded again by a task that merely ran at the same time.
   */
  readonly seen?: Map<string, string>;
}): Promise<UploadedObject[]> {
  const { glob } = await import('tinyglobby');
  const { Upload } = await import('@aws-sdk/lib-storage');
  const files = await glob([...options.globs], {
    cwd: options.workdir,
    onlyFiles: true,
    dot: false,
    followSymbolicLinks: true,
    expandDirectories: false,
  });
  const excluded = options.exclude ? resolve(options.exclude) : undefined;
  const uploaded: UploadedObject[] = [];
  for (const file of files.sort()) {
    const path = resolve(options.workdir, file);
    if (excluded && (path === excluded || path.startsWith(`${excluded}${sep}`))) continue;
    let size: number;
    let signature: string;
    try {
      const stat = statSync(path);
      if (stat.mtimeMs < options.since - MTIME_SLACK_MS) continue;
      size = stat.size;
      signature = `${stat.mtimeMs}:${size}`;
    } catch {
      continue; // gone since the glob saw it
    }
    if (options.seen?.get(path) === signature) continue;
    const key = objectKey(options.settings, options.run, relative(options.workdir, path));
    const checksum = await sha256(path);
    try {
      await new Upload({
        client: options.client,
        params: {
          Bucket: options.settings.bucket,
          Key: key,
          Body: createReadStream(path),
          ContentLength: size,
          Metadata: { sha256: checksum.slice('sha256:'.length) },
        },
        partSize: PART_SIZE,
        queueSize: 4,
      }).done();
    } catch (error) {
      throw new InfraError(
        'UPLOAD_FAILED',
        `could not upload \`${file}\` to s3://${options.settings.bucket}/${key}: ${describeS3Error(error)}`,
        { cause: error },
      );
    }
    uploaded.push({ key, size, checksum });
    if (options.seen) {
      options.seen.delete(path);
      options.seen.set(path, signature);
      if (options.seen.size > SEEN_KEPT)
        options.seen.delete(options.seen.keys().next().value as string);
    }
  }
  return uploaded;
}

/** `1.5 MB`, `300 B`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** How `tasker fetch` went. */
export interface Fetched {
  readonly downloaded: number;
  readonly bytes: number;
  readonly skipped: number;
}

/**
 * Downloads a run's objects into `dest`, keeping their paths under the run's prefix, skipping
 * files already there with the same size. `match` filters on those paths.
 */
export async function fetchRun(options: {
  readonly client: S3Client;
  readonly settings: S3Settings;
  readonly run: string;
  readonly dest: string;
  readonly match?: (path: string) => boolean;
  readonly onFile?: (path: string, size: number) => void;
}): Promise<Fetched> {
  const prefix = runPrefix(options.settings, options.run);
  const dest = resolve(options.dest);
  let downloaded = 0;
  let bytes = 0;
  let skipped = 0;
  let seen = 0;
  const objects = listObjects(options.client, options.settings.bucket, prefix, {
    fail: (error) => s3Failure(error, `list s3://${options.settings.bucket}/${prefix}`),
  });
  for await (const object of objects) {
    const key = object.Key as string;
    const path = key.slice(prefix.length);
    if (path === '' || path.endsWith('/')) continue;
    seen++;
    if (options.match && !options.match(path)) continue;
    const target = resolve(dest, path);
    if (isAbsolute(path) || !target.startsWith(`${dest}${sep}`)) continue; // `..` in a key
    const size = object.Size ?? 0;
    try {
      if (statSync(target).size === size) {
        skipped++;
        continue;
      }
    } catch {
      // not there yet
    }
    makeDirs(dirname(target));
    await downloadObject(options.client, options.settings.bucket, key, {
      target,
      partial: join(dirname(target), `.${path.split('/').pop()}.warren-partial`),
      fail: (error) => s3Failure(error, `download s3://${options.settings.bucket}/${key}`),
    });
    downloaded++;
    bytes += size;
    options.onFile?.(path, size);
  }
  if (seen === 0) {
    throw new InputError(
      'NOTHING_TO_FETCH',
      `no objects under s3://${options.settings.bucket}/${prefix}: run ${options.run} uploaded nothing there`,
    );
  }
  return { downloaded, bytes, skipped };
}

/** How a listing or a download ends: `fail` maps the S3 client's error; `abortSignal` stops it. */
interface S3Call {
  readonly fail?: (error: unknown) => Error;
  readonly abortSignal?: AbortSignal;
}

/** Every object under `prefix`, a page of the listing at a time. */
export async function* listObjects(
  client: S3Client,
  bucket: string,
  prefix: string,
  call: S3Call = {},
): AsyncGenerator<_Object> {
  const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  let token: string | undefined;
  do {
    const page = await client
      .send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        {
          abortSignal: call.abortSignal,
        },
      )
      .catch((error: unknown) => {
        throw call.fail ? call.fail(error) : error;
      });
    yield* page.Contents ?? [];
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

/**
 * Downloads an object to `target` through `partial` (renamed once whole), so that a reader
 * never sees half a file.
 */
export async function downloadObject(
  client: S3Client,
  bucket: string,
  key: string,
  call: S3Call & { readonly target: string; readonly partial: string },
): Promise<void> {
  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  const got = await client
    .send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: call.abortSignal })
    .catch((error: unknown) => {
      throw call.fail ? call.fail(error) : error;
    });
  await pipeline(got.Body as Readable, createWriteStream(call.partial), {
    signal: call.abortSignal,
  });
  await rename(call.partial, call.target);
}

function s3Failure(error: unknown, what: string): InfraError {
  return new InfraError('S3_FAILED', `could not ${what}: ${describeS3Error(error)}`, {
    cause: error,
  });
}
