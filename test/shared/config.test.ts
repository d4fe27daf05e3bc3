import { describe, expect, it } from 'vitest';
import { ENVIRONMENT, loadConfig } from '../../shared/config.js';

describe('configuration', () => {
  it('reads exactly the environment variables it lists (the manifests are held to that list)', () => {
    const read = new Set<string>();
    const env = new Proxy({} as NodeJS.ProcessEnv, {
      get: (_target, name) => {
        if (typeof name === 'string') read.add(name);
        return undefined;
      },
    });
    loadConfig(env, {});
    // With a broker URL, S3 bucket and all the rest set, the branches that read more run too.
    const full = new Proxy({} as NodeJS.ProcessEnv, {
      get: (_target, name) => {
        if (typeof name !== 'string') return undefined;
        read.add(name);
        return { RABBITMQ_HOST: 'rabbit', S3_BUCKET: 'results' }[name];
      },
    });
    loadConfig(full, {});
    expect([...read].sort()).toEqual([...ENVIRONMENT].sort());
  });

  it('takes flags over the environment over defaults, and refuses bad values with one line', () => {
    const config = loadConfig(
      { WARREN_RETRIES: '5', WARREN_TIMEOUT: '90' },
      { retries: '1' },
      '/work',
    );
    expect(config.retries).toBe(1);
    expect(config.timeoutMs).toBe(90_000);
    expect(config.stateDir).toBe('/work/.warren');
    expect(config.broker).toBeUndefined();
    expect(
      loadConfig({ RABBITMQ_HOST: 'rabbit', RABBITMQ_USER: 'u', RABBITMQ_PASS: 'p w' }, {}).broker
        ?.url,
    ).toBe('amqp://u:p%20w@rabbit:5672');
    expect(() => loadConfig({ WARREN_SLOTS: '0' }, {})).toThrow(
      'invalid number of slots `0`: expected a whole number from 1 to 1024',
    );
    expect(() => loadConfig({}, { logLevel: 'chatty' })).toThrow('invalid log level `chatty`');
    // A worker holds at least a delivery per slot; by default exactly that.
    expect(loadConfig({}, { concurrency: '4' }).prefetch).toBe(4);
    expect(loadConfig({ WARREN_PREFETCH: '8' }, { concurrency: '4' }).prefetch).toBe(8);
    expect(() => loadConfig({}, { concurrency: '4', prefetch: '2' })).toThrow(
      'invalid prefetch `2`: expected a whole number from 4 to 400',
    );
  });
});
