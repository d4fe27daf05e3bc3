import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eachTempDir, tasker, worker } from '../helpers/cli.js';

let dir: string;
eachTempDir((made) => (dir = made), { leftovers: 'fail' });

// One environment for both processes, as a ConfigMap shared by the tasker Job and the worker
// Deployment: a worker's setting is the worker's business.
const BAD_WORKER_SETTINGS: [string, Record<string, string>, string][] = [
  [
    'a prefetch that is not a number',
    { WARREN_PREFETCH: 'abc' },
    'worker: invalid prefetch `abc`: expected a whole number from 1 to 100',
  ],
  [
    'a 5-character signing key',
    { WARREN_SIGNING_KEY: 'short' },
    'worker: WARREN_SIGNING_KEY is too short: use at least 16 characters (32 random bytes, base64, is good)',
  ],
];

describe('one environment for the tasker and the worker', () => {
  it.each(BAD_WORKER_SETTINGS)(
    'with %s, tasker status and split still work and the worker refuses to start',
    async (_what, env, refusal) => {
      writeFileSync(join(dir, 'jobs.sh'), 'echo one\necho two\n');
      expect(
        (await tasker(['run', 'jobs.sh', '--run-id', 'shared-1'], { cwd: dir })).exitCode,
      ).toBe(0);

      const status = await tasker(['status', '--json'], { cwd: dir, env });
      expect(status.stderr).toBe('');
      expect(status.exitCode).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject({ run: 'shared-1', state: 'succeeded' });
      const text = await tasker(['status'], { cwd: dir, env });
      expect(text.exitCode).toBe(0);
      expect(text.stdout).toContain('shared-1');

      const split = await tasker(['split', 'jobs.sh'], { cwd: dir, env });
      expect(split.stderr).toBe('');
      expect(split.exitCode).toBe(0);
      expect(split.stdout).toMatch(/^jobs\.sh\.part1 +phase1 +parallel +2 lines$/);
      expect(existsSync(join(dir, 'jobs.sh.part1'))).toBe(true);

      // The worker checks its settings before it reaches for the broker (here one that is not
      // there, so a worker that did not refuse would fail otherwise, and soon).
      const refused = await worker([], {
        cwd: dir,
        env: {
          ...env,
          RABBITMQ_URL: 'amqp://guest:guest@127.0.0.1:1',
          WARREN_CONNECT_TIMEOUT: '1s',
        },
      });
      expect(refused.stderr).toBe(refusal);
      expect(refused.exitCode).toBe(2);
    },
  );
});
