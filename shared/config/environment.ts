import type { Environment } from './read.js';

/**
 * Every environment variable Warren reads. The Kubernetes manifests may set no other (a test
 * holds them to it), and a unit test holds this list to what the loaders really read.
 */
export const ENVIRONMENT = [
  'RABBITMQ_URL',
  'RABBITMQ_HOST',
  'RABBITMQ_PORT',
  'RABBITMQ_USER',
  'RABBITMQ_PASS',
  'WARREN_WORKDIR',
  'WARREN_STATE_DIR',
  'WARREN_RUN_ID',
  'WARREN_SLOTS',
  'WARREN_RETRIES',
  'WARREN_RETRY_DELAY',
  'WARREN_TIMEOUT',
  'WARREN_KILL_GRACE',
  'WARREN_CA_FILE',
  'WARREN_HEARTBEAT',
  'WARREN_CONNECT_TIMEOUT',
  'WARREN_RECONNECT_TIMEOUT',
  'WARREN_QUEUE',
  'WARREN_DELIVERY_LIMIT',
  'WARREN_CONSUMER_TIMEOUT',
  'WARREN_PUBLISH_WINDOW',
  'WARREN_BATCH',
  'WARREN_LOST_AFTER',
  'WARREN_CLASSES',
  'WARREN_ORDER',
  'WARREN_HISTORY_S3',
  'WARREN_CONCURRENCY',
  'WARREN_CLASS',
  'WARREN_PREFETCH',
  'WARREN_EXIT_WHEN_IDLE',
  'WARREN_GRACE',
  'WARREN_WORKER_NAME',
  'WARREN_LEASE_INTERVAL',
  'WARREN_INFLIGHT_DIR',
  'WARREN_HEALTH_PORT',
  'WARREN_METRICS_PORT',
  'WARREN_SIGNING_KEY',
  'WARREN_LOG_LEVEL',
  'WARREN_LOG_FORMAT',
  'S3_ENDPOINT_URL',
  'AWS_ENDPOINT_URL',
  'S3_REGION_NAME',
  'AWS_REGION',
  'AWS_DEFAULT_REGION',
  'S3_AWS_ACCESS_KEY_ID',
  'AWS_ACCESS_KEY_ID',
  'S3_AWS_SECRET_ACCESS_KEY',
  'AWS_SECRET_ACCESS_KEY',
  'S3_BUCKET',
  'S3_PREFIX',
] as const;

/**
 * Variables that hold Warren's own credentials; tasks never see them. The standard AWS_*
 * credentials pass through: tasks often read S3 themselves with them.
 */
const SECRET_ENV = new Set([
  'RABBITMQ_URL',
  'RABBITMQ_PASS',
  'WARREN_SIGNING_KEY',
  'S3_AWS_SECRET_ACCESS_KEY',
]);

/**
 * The environment tasks start from: this process's, minus Warren's own secrets (broker URL and
 * password, signing key), which a task has no business reading.
 */
export function taskEnvironment(env: Environment): Environment {
  return Object.freeze(
    Object.fromEntries(Object.entries(env).filter(([name]) => !SECRET_ENV.has(name))),
  );
}
