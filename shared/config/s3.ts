import { isAbsolute } from 'node:path';
import { InputError } from '../errors.js';
import type { Environment } from './read.js';

/** Where S3 uploads go and how to reach them (docs/outputs.md), when a bucket is set. */
export interface S3Settings {
  /** `S3_ENDPOINT_URL` or `AWS_ENDPOINT_URL`: a non-AWS server (MinIO, Ceph, Scaleway...). */
  readonly endpoint: string | undefined;
  /** `S3_REGION_NAME`, `AWS_REGION` or `AWS_DEFAULT_REGION`. @defaultValue `us-east-1` */
  readonly region: string;
  /** `S3_AWS_ACCESS_KEY_ID` or `AWS_ACCESS_KEY_ID`; absent: the AWS SDK's own chain. */
  readonly accessKeyId: string | undefined;
  /** `S3_AWS_SECRET_ACCESS_KEY` or `AWS_SECRET_ACCESS_KEY`. */
  readonly secretAccessKey: string | undefined;
  /** `S3_BUCKET` or `--bucket`. */
  readonly bucket: string;
  /** `S3_PREFIX`: keys are `<prefix>/<run>/<path>`. @defaultValue none */
  readonly prefix: string;
}

/**
 * S3, for uploads of task outputs and `tasker fetch`.
 * @returns undefined when neither `S3_BUCKET` nor `--bucket` names a bucket: no uploads
 */
export function loadS3(env: Environment, bucketFlag: string | undefined): S3Settings | undefined {
  const first = (...names: string[]) =>
    names.map((name) => env[name]).find((value) => value !== undefined && value !== '');
  const bucket = bucketFlag ?? first('S3_BUCKET');
  if (!bucket) return undefined;
  return Object.freeze({
    endpoint: first('S3_ENDPOINT_URL', 'AWS_ENDPOINT_URL'),
    region: first('S3_REGION_NAME', 'AWS_REGION', 'AWS_DEFAULT_REGION') ?? 'us-east-1',
    accessKeyId: first('S3_AWS_ACCESS_KEY_ID', 'AWS_ACCESS_KEY_ID'),
    secretAccessKey: first('S3_AWS_SECRET_ACCESS_KEY', 'AWS_SECRET_ACCESS_KEY'),
    bucket,
    prefix: (first('S3_PREFIX') ?? '').replace(/^\/+|\/+$/g, ''),
  });
}

/**
 * Upload globs (`--upload`), checked: relative to the working directory and inside it, so an
 * upload never reaches beyond the shared volume.
 */
export function uploadGlobs(globs: readonly string[] | undefined): readonly string[] {
  for (const glob of globs ?? []) {
    if (glob.trim() === '' || isAbsolute(glob) || glob.split('/').includes('..')) {
      throw new InputError(
        'BAD_UPLOAD_GLOB',
        `invalid --upload \`${glob}\`: give a glob relative to the working directory, without ..`,
      );
    }
  }
  return [...(globs ?? [])];
}
