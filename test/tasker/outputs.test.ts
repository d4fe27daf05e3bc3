import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tasker } from '../helpers/cli.js';
import {
  brokerUrl,
  declareTaskQueue,
  eachFleet,
  startWorkers,
  type WorkerProcess,
  waitForConsumers,
} from '../helpers/fleet.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';
import { objectOf, objectsIn, s3Env, testBucket } from '../helpers/s3.js';

let dir: string;
let queue: string;
let workers: WorkerProcess[];
eachFleet((fleet) => ({ dir, queue, workers } = fleet));

const write = (name: string, text: string) => writeFileSync(join(dir, name), text);
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const filesUnder = (root: string): string[] =>
  readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(root.length + 1))
    .sort();

describe('outputs to S3', () => {
  it('uploads what each task wrote, records it, and tasker fetch brings it back', async () => {
    const bucket = await testBucket();
    const env = s3Env(bucket, 'studies/a');
    mkdirSync(join(dir, 'out'));
    // Written before the run: not an output of any task.
    write('out/old.txt', 'from before\n');
    const past = new Date(Date.now() - 60_000);
    utimesSync(join(dir, 'out/old.txt'), past, past);
    write(
      'jobs.sh',
      [
        'echo one > out/a.txt',
        'echo two > out/b.txt',
        // 20 MB: goes up in parts.
        'mkdir -p big && head -c 20000000 /dev/urandom > big/large.bin',
        'env > env.txt',
      ].join('\n'),
    );
    const run = await tasker(
      [
        'run',
        'jobs.sh',
        '--run-id',
        's3-1',
        '-j',
        '2',
        '--upload',
        'out/*.txt',
        '--upload',
        'big/**',
      ],
      { cwd: dir, env },
    );
    expect(run.exitCode).toBe(0);
    const objects = await objectsIn(bucket);
    // Beside the outputs, never among them: the run's ledger, for other state dirs' history.
    expect([...objects.keys()].sort()).toEqual([
      'studies/a/.warren/ledgers/s3-1.jsonl',
      'studies/a/s3-1/big/large.bin',
      'studies/a/s3-1/out/a.txt',
      'studies/a/s3-1/out/b.txt',
    ]);
    expect(objects.get('studies/a/s3-1/big/large.bin')).toBe(20_000_000);
    const large = readFileSync(join(dir, 'big/large.bin'));
    const stored = await objectOf(bucket, 'studies/a/s3-1/big/large.bin');
    expect(stored.body.equals(large)).toBe(true);
    expect(`sha256:${stored.metadata.sha256}`).toBe(sha256(large));
    // The ledger lists each task's own uploads, with sizes and checksums.
    const uploaded = endsOf(ledgerOf(join(dir, '.warren'), 's3-1')).flatMap(
      (end) => end.uploaded ?? [],
    );
    expect(uploaded).toContainEqual({
      key: 'studies/a/s3-1/big/large.bin',
      size: 20_000_000,
      checksum: sha256(large),
    });
    expect(new Set(uploaded.map((object) => object.key))).toEqual(
      new Set([...objects.keys()].filter((key) => key.startsWith('studies/a/s3-1/'))),
    );
    // Each task lists its own output (a file another task wrote meanwhile may be listed too).
    const ends = endsOf(ledgerOf(join(dir, '.warren'), 's3-1'));
    for (const [command, key] of [
      ['echo one > out/a.txt', 'studies/a/s3-1/out/a.txt'],
      ['echo two > out/b.txt', 'studies/a/s3-1/out/b.txt'],
    ]) {
      const end = ends.find((record) => record.command === command);
      expect(end?.uploaded?.map((object) => object.key)).toContain(key);
    }
    // Tasks never see the secret Warren uploads with.
    expect(readFileSync(join(dir, 'env.txt'), 'utf8')).not.toContain('S3_AWS_SECRET_ACCESS_KEY');

    const dest = join(dir, 'fetched');
    const fetched = await tasker(['fetch', dest], { cwd: dir, env });
    expect(fetched.exitCode).toBe(0);
    expect(fetched.stdout).toBe(
      `fetched run s3-1 from s3://${bucket}/studies/a/s3-1/ into ${dest}: 3 files (20.0 MB), 0 already there`,
    );
    expect(filesUnder(dest)).toEqual(['big/large.bin', 'out/a.txt', 'out/b.txt']);
    expect(readFileSync(join(dest, 'big/large.bin')).equals(large)).toBe(true);
    // Again: nothing to download.
    const again = await tasker(['fetch', dest, '--run-id', 's3-1'], { cwd: dir, env });
    expect(again.stdout).toMatch(/: 0 files \(0 B\), 3 already there$/);
    const json = await tasker(['fetch', dest, '--json'], { cwd: dir, env });
    expect(JSON.parse(json.stdout)).toEqual({
      run: 's3-1',
      from: `s3://${bucket}/studies/a/s3-1/`,
      dest,
      downloaded: 0,
      bytes: 0,
      skipped: 3,
    });
    const some = join(dir, 'some');
    const globbed = await tasker(['fetch', some, '--glob', 'out/*'], { cwd: dir, env });
    expect(globbed.exitCode).toBe(0);
    expect(filesUnder(some)).toEqual(['out/a.txt', 'out/b.txt']);
    expect(statSync(join(some, 'out/a.txt')).size).toBe(4);
  });

  it('fails a task whose outputs cannot be uploaded, with class upload', async () => {
    const env = s3Env('no-such-bucket');
    write('jobs.sh', 'mkdir -p out && echo one > out/a.txt\n');
    const run = await tasker(
      ['run', 'jobs.sh', '--run-id', 's3-2', '--retries', '0', '--upload', 'out/*'],
      { cwd: dir, env },
    );
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(
      /upload failed: could not upload `out\/a.txt` to s3:\/\/no-such-bucket\/s3-2\/out\/a.txt: NoSuchBucket/,
    );
    expect(endsOf(ledgerOf(join(dir, '.warren'), 's3-2'))).toMatchObject([
      { state: 'failed', failure: 'upload', exitCode: 0, final: true },
    ]);
  });

  it('workers upload with their own bucket and globs; the tasker needs none', async () => {
    const bucket = await testBucket();
    write('jobs.sh', 'echo a > a.out\necho b > b.out\necho c > c.log\n');
    await declareTaskQueue(queue);
    workers.push(
      ...startWorkers(2, {
        cwd: dir,
        queue,
        args: ['--upload', '*.out'],
        env: s3Env(bucket),
      }),
    );
    await waitForConsumers(queue, 2);
    const run = await tasker(['run', 'jobs.sh', '--run-id', 's3-3', '--upload', '*.log'], {
      cwd: dir,
      env: { RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue },
    });
    expect(run.exitCode).toBe(0);
    expect([...(await objectsIn(bucket)).keys()].sort()).toEqual([
      's3-3/a.out',
      's3-3/b.out',
      's3-3/c.log',
    ]);
    const ends = endsOf(ledgerOf(join(dir, '.warren'), 's3-3'));
    expect(ends.every((end) => end.worker.startsWith('w'))).toBe(true);
  });

  it('refuses bad upload settings with one line and exit 2', async () => {
    write('jobs.sh', 'true\n');
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['run', 'jobs.sh', '--upload', '/etc/*'], s3Env('b-1'), /invalid --upload `\/etc\/\*`/],
      [['run', 'jobs.sh', '--upload', '../x'], s3Env('b-1'), /invalid --upload `..\/x`/],
      [['run', 'jobs.sh', '--upload', 'out/*'], {}, /--upload needs a bucket: set S3_BUCKET/],
      [['fetch', 'dest', '--run-id', 'x'], {}, /tasker fetch needs a bucket/],
    ];
    for (const [args, env, message] of cases) {
      const result = await tasker(args, { cwd: dir, env });
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(result.stderr).toMatch(message);
    }
    const bucket = await testBucket();
    const empty = await tasker(['fetch', 'dest', '--run-id', 'nothing-here'], {
      cwd: dir,
      env: s3Env(bucket),
    });
    expect(empty.exitCode).toBe(2);
    expect(empty.stderr).toMatch(/no objects under s3:\/\/warren-\w+\/nothing-here\//);
    expect(readdirSync(dir).sort()).toEqual(['jobs.sh']);
  });
});
