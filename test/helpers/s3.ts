import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { inject } from 'vitest';

/**
 * A real S3-speaking server for the tests: s3rver, on its own port, keeping objects in a temp
 * dir. It answers the same REST API (path-style) as MinIO or Ceph, and checks SigV4 headers.
 */
export async function startTestS3(): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  const directory = mkdtempSync(join(tmpdir(), 'warren-s3-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', directory, silent: true });
  const { port } = (await server.run()) as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: async () => {
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** The access key s3rver takes. */
export const S3_KEYS = { S3_AWS_ACCESS_KEY_ID: 'S3RVER', S3_AWS_SECRET_ACCESS_KEY: 'S3RVER' };

/** Environment that points Warren at the test server and a bucket, as asreview-cloud named it. */
export function s3Env(bucket: string, prefix = ''): Record<string, string> {
  return {
    S3_ENDPOINT_URL: inject('s3Endpoint'),
    S3_REGION_NAME: 'us-east-1',
    ...S3_KEYS,
    S3_BUCKET: bucket,
    S3_PREFIX: prefix,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
}

export function testS3Client(): S3Client {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  return new S3Client({
    endpoint: inject('s3Endpoint'),
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Makes a bucket of the test's own. */
export async function testBucket(): Promise<string> {
  const bucket = `warren-${randomBytes(4).toString('hex')}`;
  await testS3Client().send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

/** Keys and sizes in a bucket, under a prefix. */
export async function objectsIn(bucket: string, prefix = ''): Promise<Map<string, number>> {
  const listed = await testS3Client().send(
    new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }),
  );
  return new Map((listed.Contents ?? []).map((object) => [object.Key ?? '', object.Size ?? 0]));
}

/** An object's bytes and metadata. */
export async function objectOf(
  bucket: string,
  key: string,
): Promise<{ body: Buffer; metadata: Record<string, string> }> {
  const client = testS3Client();
  const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return {
    body: Buffer.from(
      await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    ),
    metadata: head.Metadata ?? {},
  };
}
