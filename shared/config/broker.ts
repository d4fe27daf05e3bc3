import { resolve } from 'node:path';
import type { BrokerOptions } from '../broker.js';
import { MINUTE, SECOND } from '../duration.js';
import { InputError } from '../errors.js';
import { NAMES } from '../topology.js';
import { type Environment, matching, settingReader } from './read.js';

const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;

function brokerUrl(env: Environment): string | undefined {
  const url = env.RABBITMQ_URL || undefined;
  if (url) {
    if (!/^amqps?:\/\/[^/]/.test(url)) {
      throw new InputError(
        'BAD_BROKER_URL',
        'invalid RABBITMQ_URL: expected amqp://user:pass@host:port/vhost or amqps://...',
      );
    }
    return url;
  }
  if (!env.RABBITMQ_HOST) return undefined;
  const user = encodeURIComponent(env.RABBITMQ_USER ?? 'guest');
  const pass = encodeURIComponent(env.RABBITMQ_PASS ?? 'guest');
  const port = env.RABBITMQ_PORT ?? '5672';
  return `amqp://${user}:${pass}@${env.RABBITMQ_HOST}:${port}`;
}

/**
 * The broker, from `RABBITMQ_URL` or `RABBITMQ_HOST`/`_PORT` (5672)/`_USER`/`_PASS` (guest),
 * with how hard to try reaching it: `WARREN_CONNECT_TIMEOUT` (30 s), `WARREN_RECONNECT_TIMEOUT`
 * (5 min), `WARREN_HEARTBEAT` (30 s), and `WARREN_CA_FILE` or `--ca-file` for amqps. The
 * connection's name is `warren`; each process names its own.
 * @returns undefined when no broker is configured (a tasker then runs the local pool)
 */
export function loadBroker(
  env: Environment,
  flags: { readonly caFile?: string },
  cwd = process.cwd(),
): BrokerOptions | undefined {
  const url = brokerUrl(env);
  if (url === undefined) return undefined;
  const read = settingReader(env);
  const caFile = read.text(flags.caFile, 'WARREN_CA_FILE');
  return Object.freeze({
    url,
    caFile: caFile === undefined ? undefined : resolve(cwd, caFile),
    // AMQP counts heartbeats in whole seconds, and 0 would turn them off.
    heartbeatSeconds: Math.max(
      1,
      Math.round(read.duration(undefined, 'WARREN_HEARTBEAT', 'heartbeat', 30 * SECOND) / SECOND),
    ),
    connectTimeoutMs: read.duration(
      undefined,
      'WARREN_CONNECT_TIMEOUT',
      'connect timeout',
      30 * SECOND,
    ),
    reconnectTimeoutMs: read.duration(
      undefined,
      'WARREN_RECONNECT_TIMEOUT',
      'reconnect timeout',
      5 * MINUTE,
    ),
    name: 'warren',
  });
}

/**
 * The task queue both the tasker and its workers use (`WARREN_QUEUE`, `--queue`).
 * @defaultValue `warren.tasks`
 */
export function loadQueue(env: Environment, flag: string | undefined): string {
  const name = settingReader(env).text(flag, 'WARREN_QUEUE') ?? NAMES.taskQueue;
  return matching(name, QUEUE_NAME, 'queue name');
}

/**
 * The key the tasker signs tasks with and workers check them with (HMAC-SHA256), only from
 * the environment (a Kubernetes Secret), never a flag: a flag would show in `ps`.
 * @returns undefined when `WARREN_SIGNING_KEY` is unset or empty: tasks are not signed
 */
export function loadSigningKey(env: Environment): string | undefined {
  const key = env.WARREN_SIGNING_KEY;
  if (key === undefined || key === '') return undefined;
  if (key.length < 16)
    throw new InputError(
      'WEAK_SIGNING_KEY',
      'WARREN_SIGNING_KEY is too short: use at least 16 characters (32 random bytes, base64, is good)',
    );
  return key;
}
