import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { statePaths } from '../../../shared/statePaths.js';
import { eachTempDir, logLines, tasker } from '../../helpers/cli.js';
import { endsOf, ledgerOf } from '../../helpers/ledger.js';
import { objectsIn, s3Env, testBucket } from '../../helpers/s3.js';

let dir: string;
eachTempDir((made) => {
  dir = made;
});

// Distinct lines, as in the publish-order test: the history keys a command by its whole text.
const A = 'sleep 0.1 # a';
const B = 'sleep 0.7 # b';
const C = 'sleep 0.4 # c';
const D = 'sleep 0.25 # d';

/** A machine of its own: a working directory with the jobs file, and its state dir in it. */
function machine(name: string): { cwd: string; state: string } {
  const cwd = join(dir, name);
  mkdirSync(cwd);
  writeFileSync(join(cwd, 'jobs.sh'), [A, B, C, D].join('\n'));
  return { cwd, state: join(cwd, '.warren') };
}

/** The commands of a local run in the order they started (one slot: the order published). */
function startOrder(state: string, run: string): string[] {
  const records = ledgerOf(state, run);
  const commands = new Map(endsOf(records).map((end) => [end.task, end.command]));
  return records.flatMap((record) =>
    record.type === 'start' ? [commands.get(record.task) ?? record.task] : [],
  );
}

const orderRecord = (state: string, run: string) =>
  ledgerOf(state, run).find((record) => record.type === 'order');

const warnings = (stderr: string) =>
  logLines(stderr)
    .filter((line) => line.level >= 40)
    .map((line) => line.msg);

const run = (cwd: string, id: string, env: Record<string, string>) =>
  tasker(['run', 'jobs.sh', '--local', '-j', '1', '--run-id', id], { cwd, env });

describe('duration history through S3', () => {
  it('uploads each run ledger, and a fresh state dir with the same bucket publishes longest first from it', async () => {
    const bucket = await testBucket();
    const env = s3Env(bucket, 'study');
    const from = `s3://${bucket}/study/.warren/ledgers/`;

    // Machine 1: nothing known anywhere yet.
    const one = machine('one');
    const a = await run(one.cwd, 'a', env);
    expect(a.exitCode, a.stderr).toBe(0);
    expect(a.stderr).toContain(`history: 0 ledgers from ${from} (0 fetched now, 0 B)`);
    expect(startOrder(one.state, 'a')).toEqual([A, B, C, D]);
    // Its ledger sits beside the run's outputs, whole (with its run-end), at the documented key.
    expect(a.stderr).toContain(`ledger uploaded to ${from}a.jsonl`);
    const objects = await objectsIn(bucket);
    expect([...objects.keys()]).toEqual(['study/.warren/ledgers/a.jsonl']);
    expect(objects.get('study/.warren/ledgers/a.jsonl')).toBe(
      statSync(statePaths.ledger(one.state, 'a')).size,
    );

    // Machine 2: a fresh state dir, the same bucket: A's durations order its phase.
    const two = machine('two');
    const b = await run(two.cwd, 'b', env);
    expect(b.exitCode, b.stderr).toBe(0);
    expect(b.stderr).toMatch(
      new RegExp(`history: 1 ledger from ${from} \\(1 fetched now, \\d+(\\.\\d)? k?B\\)`),
    );
    expect(orderRecord(two.state, 'b')).toMatchObject({ by: 'longest', known: 4, unknown: 0 });
    expect(startOrder(two.state, 'b')).toEqual([B, C, D, A]);
    expect(existsSync(join(statePaths.s3Ledgers(two.state), 'a.jsonl'))).toBe(true);
    expect(warnings(b.stderr)).toEqual([]);

    // Again on machine 2: a listing, no download (A's copy is current, B is its own run).
    const c = await run(two.cwd, 'c', env);
    expect(c.exitCode, c.stderr).toBe(0);
    expect(c.stderr).toContain(
      `history: 1 ledger from ${from} (0 fetched now, 0 B; 1 of this state dir's own runs left out)`,
    );
    expect(startOrder(two.state, 'c')).toEqual([B, C, D, A]);
    expect([...(await objectsIn(bucket, 'study/.warren/ledgers/')).keys()].sort()).toEqual([
      'study/.warren/ledgers/a.jsonl',
      'study/.warren/ledgers/b.jsonl',
      'study/.warren/ledgers/c.jsonl',
    ]);

    // WARREN_HISTORY_S3=off: nothing fetched, nothing uploaded.
    const three = machine('three');
    const d = await run(three.cwd, 'd', { ...env, WARREN_HISTORY_S3: 'off' });
    expect(d.exitCode, d.stderr).toBe(0);
    expect(d.stderr).not.toContain('history: ');
    expect(orderRecord(three.state, 'd')).toMatchObject({ by: 'file', known: 0 });
    await expect(objectsIn(bucket, 'study/.warren/ledgers/d')).resolves.toEqual(new Map());
  });

  it('runs in file order with one warn line when S3 cannot be reached, and the upload failing changes nothing', async () => {
    const bucket = await testBucket();
    // Port 9 (discard): nothing listens there.
    const env = { ...s3Env(bucket, 'study'), S3_ENDPOINT_URL: 'http://127.0.0.1:9' };
    const one = machine('one');
    const started = Date.now();
    const a = await run(one.cwd, 'a', env);
    expect(a.exitCode, a.stderr).toBe(0);
    expect(startOrder(one.state, 'a')).toEqual([A, B, C, D]);
    const said = warnings(a.stderr);
    expect(said.filter((msg) => msg.startsWith('history: '))).toEqual([
      expect.stringMatching(
        new RegExp(
          `^history: cannot fetch ledgers from s3://${bucket}/study/\\.warren/ledgers/: .+; going on with this state dir's history$`,
        ),
      ),
    ]);
    expect(said.filter((msg) => msg.startsWith('cannot upload the ledger'))).toHaveLength(1);
    expect(said).toHaveLength(2);
    // The S3 client's retries are short against a refused connection.
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});
