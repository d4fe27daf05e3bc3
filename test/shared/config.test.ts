import { describe, expect, it } from 'vitest';
import { ENVIRONMENT } from '../../shared/config/environment.js';
import { loadLogging } from '../../shared/config/logging.js';
import { loadPaths } from '../../shared/config/paths.js';
import type { Environment } from '../../shared/config/read.js';
import {
  loadBrokerCommandConfig,
  loadFetchConfig,
  loadRunConfig,
  loadRunLookup,
} from '../../tasker/config.js';
import { loadWorkerConfig } from '../../worker/config.js';

/** An environment that records every variable read, holding `values`. */
function recording(values: Record<string, string> = {}): { env: Environment; read: Set<string> } {
  const read = new Set<string>();
  const env = new Proxy({} as Environment, {
    get: (_target, name) => {
      if (typeof name !== 'string') return undefined;
      read.add(name);
      return values[name];
    },
  });
  return { env, read };
}

const LOADERS = {
  paths: (env: Environment) => loadPaths({}, env),
  logging: (env: Environment) => loadLogging({}, env),
  lookup: (env: Environment) => loadRunLookup({}, env),
  fetch: (env: Environment) => loadFetchConfig({}, env),
  brokerCommand: (env: Environment) => loadBrokerCommandConfig({}, env),
  run: (env: Environment) => loadRunConfig({}, env),
  worker: (env: Environment) => loadWorkerConfig({}, env),
};

/** What each loader reads, with nothing set and with a broker and a bucket (more branches). */
function readBy(load: (env: Environment) => unknown): string[] {
  const empty = recording();
  load(empty.env);
  const full = recording({ RABBITMQ_HOST: 'rabbit', S3_BUCKET: 'results' });
  load(full.env);
  return [...new Set([...empty.read, ...full.read])].sort();
}

const WORKER_ONLY = [
  'WARREN_CONCURRENCY',
  'WARREN_PREFETCH',
  'WARREN_EXIT_WHEN_IDLE',
  'WARREN_GRACE',
  'WARREN_WORKER_NAME',
  'WARREN_LEASE_INTERVAL',
  'WARREN_INFLIGHT_DIR',
  'WARREN_HEALTH_PORT',
  'WARREN_METRICS_PORT',
  'WARREN_CLASS',
];

describe('configuration', () => {
  it('reads exactly the environment variables it lists (the manifests are held to that list)', () => {
    const read = new Set(Object.values(LOADERS).flatMap(readBy));
    expect([...read].sort()).toEqual([...ENVIRONMENT].sort());
  });

  it('reads for each command only what that command uses', () => {
    // status, logs, report: where the state is and which run, nothing else.
    expect(readBy(LOADERS.lookup)).toEqual(['WARREN_RUN_ID', 'WARREN_STATE_DIR', 'WARREN_WORKDIR']);
    expect(readBy(LOADERS.fetch)).not.toContain('RABBITMQ_URL');
    // No tasker command reads a worker's settings, and the worker none of a run's.
    for (const name of ['lookup', 'fetch', 'brokerCommand', 'run'] as const) {
      for (const variable of WORKER_ONLY)
        expect(readBy(LOADERS[name]), name).not.toContain(variable);
    }
    for (const variable of ['WARREN_RUN_ID', 'WARREN_SLOTS', 'WARREN_RETRIES', 'WARREN_TIMEOUT'])
      expect(readBy(LOADERS.worker)).not.toContain(variable);
    // cancel and collect sign nothing: a short key cannot stop them.
    expect(readBy(LOADERS.brokerCommand)).not.toContain('WARREN_SIGNING_KEY');
  });

  it('lets a tasker command read a run whatever worker settings the environment holds', () => {
    const shared = { WARREN_PREFETCH: 'abc', WARREN_SIGNING_KEY: 'short', WARREN_GRACE: 'never' };
    expect(loadRunLookup({}, shared, '/work').stateDir).toBe('/work/.warren');
    expect(() => loadWorkerConfig({}, shared)).toThrow(
      'invalid prefetch `abc`: expected a whole number from 1 to 100',
    );
    expect(() => loadWorkerConfig({}, { WARREN_SIGNING_KEY: 'short' })).toThrow(
      'WARREN_SIGNING_KEY is too short: use at least 16 characters (32 random bytes, base64, is good)',
    );
    // A run signs its tasks: there, as in the worker, a short key is refused.
    expect(() => loadRunConfig({}, { WARREN_SIGNING_KEY: 'short' })).toThrow(
      'WARREN_SIGNING_KEY is too short',
    );
  });

  it('takes flags over the environment over defaults, and refuses bad values with one line', () => {
    const config = loadRunConfig(
      { retries: '1' },
      { WARREN_RETRIES: '5', WARREN_TIMEOUT: '90' },
      '/work',
    );
    expect(config.retries).toBe(1);
    expect(config.timeoutMs).toBe(90_000);
    expect(config.stateDir).toBe('/work/.warren');
    expect(config.broker).toBeUndefined();
    expect(Object.isFrozen(config)).toBe(true);
    expect(
      loadRunConfig({}, { RABBITMQ_HOST: 'rabbit', RABBITMQ_USER: 'u', RABBITMQ_PASS: 'p w' })
        .broker?.url,
    ).toBe('amqp://u:p%20w@rabbit:5672');
    expect(() => loadRunConfig({}, { WARREN_SLOTS: '0' })).toThrow(
      'invalid number of slots `0`: expected a whole number from 1 to 1024',
    );
    expect(() => loadRunConfig({ logLevel: 'chatty' }, {})).toThrow('invalid log level `chatty`');
    expect(() => loadWorkerConfig({ logLevel: 'chatty' }, {})).toThrow(
      'invalid log level `chatty`',
    );
    // A worker holds at least a delivery per slot; by default exactly that.
    // Ledgers shared through the bucket unless turned off.
    expect(loadRunConfig({}, {}).historyS3).toBe(true);
    expect(loadRunConfig({}, { WARREN_HISTORY_S3: 'off' }).historyS3).toBe(false);
    expect(() => loadRunConfig({}, { WARREN_HISTORY_S3: 'no' })).toThrow(
      'invalid WARREN_HISTORY_S3 `no`: expected one of on, off',
    );
    expect(loadWorkerConfig({ concurrency: '4' }, {}).prefetch).toBe(4);
    expect(loadWorkerConfig({ concurrency: '4' }, { WARREN_PREFETCH: '8' }).prefetch).toBe(8);
    expect(() => loadWorkerConfig({ concurrency: '4', prefetch: '2' }, {})).toThrow(
      'invalid prefetch `2`: expected a whole number from 4 to 400',
    );
  });
  it('reads size classes: a worker serves one queue, a run lists them smallest first', () => {
    expect(loadWorkerConfig({}, {}).queue).toBe('warren.tasks');
    expect(loadWorkerConfig({ class: 'large' }, { WARREN_QUEUE: 'q' })).toMatchObject({
      queue: 'q.class.large',
      sizeClass: 'large',
    });
    expect(loadWorkerConfig({}, { WARREN_CLASS: 'default' }).queue).toBe('warren.tasks');
    expect(() => loadWorkerConfig({ class: 'Large' }, {})).toThrow(
      'invalid size class `Large`: use 1-31 lowercase letters, digits or -',
    );
    expect(loadRunConfig({}, {}).classes).toEqual([]);
    expect(loadRunConfig({ classes: 'default, large,xlarge' }, {}).classes).toEqual([
      'default',
      'large',
      'xlarge',
    ]);
    expect(loadRunConfig({}, { WARREN_CLASSES: 'default,large' }).classes).toEqual([
      'default',
      'large',
    ]);
    expect(() => loadRunConfig({ classes: 'large,xlarge' }, {})).toThrow(
      'invalid size classes `large,xlarge`: the first is `default`, where every task starts (--classes default,large,xlarge)',
    );
    expect(() => loadRunConfig({ classes: 'default,large,large' }, {})).toThrow(
      'a class is named twice',
    );
  });
});
