import { availableParallelism, hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import type { BrokerOptions } from './broker.js';
import { MINUTE, parseDuration, SECOND } from './duration.js';
import { InputError } from './errors.js';
import type { LogFormat } from './logger.js';
import { RUN_ID_PATTERN } from './protocol.js';
import { NAMES } from './topology.js';

/** Flags as commander hands them over: strings and booleans, all optional. */
export interface Flags {
  readonly workdir?: string;
  readonly stateDir?: string;
  readonly runId?: string;
  readonly slots?: string;
  readonly retries?: string;
  readonly retryDelay?: string;
  readonly keepGoing?: boolean;
  readonly maxTasks?: string;
  readonly http?: string;
  readonly httpHost?: string;
  readonly timeout?: string;
  readonly killGrace?: string;
  readonly local?: boolean;
  readonly logLevel?: string;
  readonly logFormat?: string;
  readonly queue?: string;
  readonly caFile?: string;
  readonly concurrency?: string;
  readonly prefetch?: string;
  readonly exitWhenIdle?: string;
  readonly grace?: string;
  readonly name?: string;
  readonly inflightDir?: string;
  readonly healthPort?: string;
  readonly metricsPort?: string;
  readonly bucket?: string;
  readonly upload?: readonly string[];
}

/** Everything Warren can be told, merged from defaults < environment < flags. */
export interface Config {
  /**
   * Directory tasks run in: the shared volume in a pod.
   * @defaultValue the current directory (`WARREN_WORKDIR`, `--workdir`)
   */
  readonly workdir: string;
  /**
   * Where run ledgers and task logs live.
   * @defaultValue `.warren` in the working directory (`WARREN_STATE_DIR`, `--state-dir`)
   */
  readonly stateDir: string;
  /**
   * Run to start or resume; a new id is made when absent.
   * @defaultValue none (`WARREN_RUN_ID`, `--run-id`)
   */
  readonly runId: string | undefined;
  /**
   * Tasks run at once by the local pool.
   * @defaultValue the number of cores (`WARREN_SLOTS`, `-j`)
   */
  readonly slots: number;
  /**
   * Extra attempts for a failed task.
   * @defaultValue 2 (`WARREN_RETRIES`, `--retries`)
   */
  readonly retries: number;
  /**
   * Delay before the first retry, in ms; doubled for each later one, at most a minute.
   * @defaultValue 1 second (`WARREN_RETRY_DELAY`, `--retry-delay`)
   */
  readonly retryDelayMs: number;
  /**
   * Run later phases even when a phase has failed tasks.
   * @defaultValue false (`--keep-going`)
   */
  readonly keepGoing: boolean;
  /**
   * Tasks spawned (`WARREN_SPAWN`) stop being added once the run has this many tasks.
   * @defaultValue none (`--max-tasks`)
   */
  readonly maxTasks: number | undefined;
  /**
   * Port of the tasker's live view (report and `/api/status`); 0: none.
   * @defaultValue 0 (`--http`), on 127.0.0.1 (`--http-host`)
   */
  readonly httpPort: number;
  readonly httpHost: string;
  /**
   * Per-task time limit in ms; 0 means none.
   * @defaultValue 0 (`WARREN_TIMEOUT`, `--timeout`)
   */
  readonly timeoutMs: number;
  /**
   * Time between SIGTERM and SIGKILL when Warren stops a task, in ms.
   * @defaultValue 10 seconds (`WARREN_KILL_GRACE`, `--kill-grace`)
   */
  readonly killGraceMs: number;
  /**
   * Run with the local pool even when a broker is configured.
   * @defaultValue false (`--local`)
   */
  readonly local: boolean;
  /**
   * The broker, from `RABBITMQ_URL` or `RABBITMQ_HOST`/`_PORT`/`_USER`/`_PASS`, with how hard to
   * try reaching it (`WARREN_CONNECT_TIMEOUT`, 30 s; `WARREN_RECONNECT_TIMEOUT`, 5 min;
   * `WARREN_HEARTBEAT`, 30 s; `WARREN_CA_FILE` or `--ca-file` for amqps).
   * @defaultValue none: runs use the local pool
   */
  readonly broker: BrokerOptions | undefined;
  /**
   * The task queue.
   * @defaultValue `warren.tasks` (`WARREN_QUEUE`, `--queue`)
   */
  readonly queue: string;
  /**
   * Redeliveries of a task (after its worker died or lost it) before the broker gives up on it
   * and the run records it `lost`; the task queue's `x-delivery-limit`.
   * @defaultValue 4 (`WARREN_DELIVERY_LIMIT`)
   */
  readonly deliveryLimit: number;
  /**
   * Tasks published and not yet confirmed, at most.
   * @defaultValue 1000 (`WARREN_PUBLISH_WINDOW`)
   */
  readonly publishWindow: number;
  /**
   * Tasks a worker runs at once (and its prefetch).
   * @defaultValue 1 (`WARREN_CONCURRENCY`, `--concurrency`)
   */
  readonly concurrency: number;
  /**
   * Deliveries a worker holds: its slots, plus tasks waiting for a free slot. More than the
   * slots hides the broker round trip between short tasks; a waiting task cannot go to an
   * idle worker, so keep it at the slots for long tasks.
   * @defaultValue the concurrency (`WARREN_PREFETCH`, `--prefetch`)
   */
  readonly prefetch: number;
  /**
   * A worker exits 0 after the queue has been empty and the worker idle this long, in ms;
   * 0 means never.
   * @defaultValue 0 (`WARREN_EXIT_WHEN_IDLE`, `--exit-when-idle`)
   */
  readonly exitWhenIdleMs: number;
  /**
   * On SIGTERM, how long a worker lets its running tasks finish before stopping them, in ms.
   * @defaultValue 30 seconds (`WARREN_GRACE`, `--grace`)
   */
  readonly graceMs: number;
  /**
   * The worker's name in results and log files.
   * @defaultValue `<hostname>-<pid>` (`WARREN_WORKER_NAME`, `--name`)
   */
  readonly workerName: string;
  /**
   * S3, for uploads of task outputs and `tasker fetch`.
   * @defaultValue none: no uploads (`S3_BUCKET` or `--bucket` turns it on)
   */
  readonly s3: S3Settings | undefined;
  /**
   * Globs of outputs to upload after a task succeeds: the tasker puts them in every task of
   * the run, a worker adds its own to every task it runs.
   * @defaultValue none (`--upload`, repeatable)
   */
  readonly upload: readonly string[];
  /**
   * Port of a worker's `/livez` and `/readyz` (for Kubernetes probes); 0 means none.
   * @defaultValue 0 (`WARREN_HEALTH_PORT`, `--health-port`)
   */
  readonly healthPort: number;
  /**
   * Worker: port of `GET /metrics` (Prometheus); may be the health port.
   * @defaultValue 0: none (`WARREN_METRICS_PORT`, `--metrics-port`)
   */
  readonly metricsPort: number;
  /**
   * Key for signing tasks (tasker) and checking them (worker): HMAC-SHA256. Only from the
   * environment (a Kubernetes Secret), never a flag.
   * @defaultValue none: tasks are not signed (`WARREN_SIGNING_KEY`)
   */
  readonly signingKey: string | undefined;
  /**
   * Where a worker keeps a marker for each running task: a directory that survives a container
   * restart (an emptyDir), so that a worker whose container died with its task reports it.
   * @defaultValue none (`WARREN_INFLIGHT_DIR`, `--inflight-dir`)
   */
  readonly inflightDir: string | undefined;
  /**
   * Environment tasks start from: this process's, minus Warren's own secrets (broker URL and
   * password, signing key), which a task has no business reading.
   */
  readonly taskEnv: Readonly<Record<string, string | undefined>>;
  /** @defaultValue `info` (`WARREN_LOG_LEVEL`, `--log-level`) */
  readonly logLevel: string;
  /** @defaultValue `auto` (`WARREN_LOG_FORMAT`, `--log-format`) */
  readonly logFormat: LogFormat;
}

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
 * Every environment variable Warren reads. The Kubernetes manifests may set no other (a test
 * holds them to it), and a unit test holds this list to what loadConfig really reads.
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
  'WARREN_PUBLISH_WINDOW',
  'WARREN_CONCURRENCY',
  'WARREN_PREFETCH',
  'WARREN_EXIT_WHEN_IDLE',
  'WARREN_GRACE',
  'WARREN_WORKER_NAME',
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

function s3From(env: NodeJS.ProcessEnv, bucketFlag: string | undefined): S3Settings | undefined {
  const first = (...names: string[]) =>
    names.map((name) => env[name]).find((value) => value !== undefined && value !== '');
  const bucket = bucketFlag ?? first('S3_BUCKET');
  if (!bucket) return undefined;
  return {
    endpoint: first('S3_ENDPOINT_URL', 'AWS_ENDPOINT_URL'),
    region: first('S3_REGION_NAME', 'AWS_REGION', 'AWS_DEFAULT_REGION') ?? 'us-east-1',
    accessKeyId: first('S3_AWS_ACCESS_KEY_ID', 'AWS_ACCESS_KEY_ID'),
    secretAccessKey: first('S3_AWS_SECRET_ACCESS_KEY', 'AWS_SECRET_ACCESS_KEY'),
    bucket,
    prefix: (first('S3_PREFIX') ?? '').replace(/^\/+|\/+$/g, ''),
  };
}

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

/** Upload globs are relative to the working directory and stay inside it. */
function uploadGlobs(globs: readonly string[]): string[] {
  for (const glob of globs) {
    if (glob.trim() === '' || isAbsolute(glob) || glob.split('/').includes('..')) {
      throw new InputError(
        'BAD_UPLOAD_GLOB',
        `invalid --upload \`${glob}\`: give a glob relative to the working directory, without ..`,
      );
    }
  }
  return [...globs];
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'pretty'];
const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;
const WORKER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

function integer(text: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < min || Number(text) > max) {
    throw new InputError(
      'BAD_NUMBER',
      `invalid ${what} \`${text}\`: expected a whole number from ${min} to ${max}`,
    );
  }
  return Number(text);
}

function oneOf<T extends string>(text: string, allowed: readonly T[], what: string): T {
  if (!allowed.includes(text as T)) {
    throw new InputError(
      'BAD_CHOICE',
      `invalid ${what} \`${text}\`: expected one of ${allowed.join(', ')}`,
    );
  }
  return text as T;
}

function matching(text: string, pattern: RegExp, what: string): string {
  if (!pattern.test(text))
    throw new InputError('BAD_NAME', `invalid ${what} \`${text}\`: use letters, digits, ., _ or -`);
  return text;
}

function signingKey(key: string | undefined): string | undefined {
  if (key === undefined || key === '') return undefined;
  if (key.length < 16)
    throw new InputError(
      'WEAK_SIGNING_KEY',
      'WARREN_SIGNING_KEY is too short: use at least 16 characters (32 random bytes, base64, is good)',
    );
  return key;
}

/** Validates a run id given by a person or the environment. */
export function checkRunId(id: string): string {
  if (!RUN_ID_PATTERN.test(id)) {
    throw new InputError(
      'BAD_RUN_ID',
      `invalid run id \`${id}\`: use 1-64 letters, digits, ., _ or -, starting with a letter or digit`,
    );
  }
  return id;
}

function brokerUrl(env: NodeJS.ProcessEnv): string | undefined {
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

/** The one place that reads the environment. Throws InputError on a bad value. */
export function loadConfig(env: NodeJS.ProcessEnv, flags: Flags, cwd = process.cwd()): Config {
  const pick = (flag: string | undefined, name: string): string | undefined =>
    flag ?? (env[name] === '' ? undefined : env[name]);
  const duration = (flag: string | undefined, name: string, what: string, fallback: number) => {
    const text = pick(flag, name);
    return text === undefined ? fallback : parseDuration(text, what);
  };
  const count = (
    flag: string | undefined,
    name: string,
    what: string,
    min: number,
    max: number,
    fallback: number,
  ) => {
    const text = pick(flag, name);
    return text === undefined ? fallback : integer(text, what, min, max);
  };
  const workdir = resolve(cwd, pick(flags.workdir, 'WARREN_WORKDIR') ?? '.');
  const concurrency = count(flags.concurrency, 'WARREN_CONCURRENCY', 'concurrency', 1, 1024, 1);
  const stateDirText = pick(flags.stateDir, 'WARREN_STATE_DIR');
  const runId = pick(flags.runId, 'WARREN_RUN_ID');
  const url = brokerUrl(env);
  const caFile = pick(flags.caFile, 'WARREN_CA_FILE');
  const inflight = pick(flags.inflightDir, 'WARREN_INFLIGHT_DIR');
  return Object.freeze({
    workdir,
    stateDir: stateDirText
      ? isAbsolute(stateDirText)
        ? stateDirText
        : resolve(cwd, stateDirText)
      : resolve(workdir, '.warren'),
    runId: runId === undefined ? undefined : checkRunId(runId),
    slots: count(flags.slots, 'WARREN_SLOTS', 'number of slots', 1, 1024, availableParallelism()),
    retries: count(flags.retries, 'WARREN_RETRIES', 'number of retries', 0, 100, 2),
    retryDelayMs: duration(flags.retryDelay, 'WARREN_RETRY_DELAY', 'retry delay', SECOND),
    keepGoing: flags.keepGoing ?? false,
    timeoutMs: duration(flags.timeout, 'WARREN_TIMEOUT', 'timeout', 0),
    killGraceMs: duration(flags.killGrace, 'WARREN_KILL_GRACE', 'kill grace', 10 * SECOND),
    local: flags.local ?? false,
    broker:
      url === undefined
        ? undefined
        : {
            url,
            caFile: caFile === undefined ? undefined : resolve(cwd, caFile),
            heartbeatSeconds: Math.max(
              1,
              Math.round(
                duration(undefined, 'WARREN_HEARTBEAT', 'heartbeat', 30 * SECOND) / SECOND,
              ),
            ),
            connectTimeoutMs: duration(
              undefined,
              'WARREN_CONNECT_TIMEOUT',
              'connect timeout',
              30 * SECOND,
            ),
            reconnectTimeoutMs: duration(
              undefined,
              'WARREN_RECONNECT_TIMEOUT',
              'reconnect timeout',
              5 * MINUTE,
            ),
            name: 'warren',
          },
    queue: matching(pick(flags.queue, 'WARREN_QUEUE') ?? NAMES.taskQueue, QUEUE_NAME, 'queue name'),
    deliveryLimit: count(undefined, 'WARREN_DELIVERY_LIMIT', 'delivery limit', 1, 1000, 4),
    publishWindow: count(undefined, 'WARREN_PUBLISH_WINDOW', 'publish window', 1, 100_000, 1000),
    maxTasks:
      flags.maxTasks === undefined ? undefined : integer(flags.maxTasks, '--max-tasks', 1, 1e9),
    httpPort: flags.http === undefined ? 0 : integer(flags.http, '--http port', 1, 65535),
    httpHost: flags.httpHost ?? '127.0.0.1',
    concurrency,
    prefetch: count(
      flags.prefetch,
      'WARREN_PREFETCH',
      'prefetch',
      concurrency,
      concurrency * 100,
      concurrency,
    ),
    exitWhenIdleMs: duration(flags.exitWhenIdle, 'WARREN_EXIT_WHEN_IDLE', 'idle time', 0),
    graceMs: duration(flags.grace, 'WARREN_GRACE', 'grace period', 30 * SECOND),
    workerName: matching(
      pick(flags.name, 'WARREN_WORKER_NAME') ?? `${hostname().split('.')[0]}-${process.pid}`,
      WORKER_NAME,
      'worker name',
    ),
    signingKey: signingKey(env.WARREN_SIGNING_KEY),
    s3: s3From(env, flags.bucket),
    upload: uploadGlobs(flags.upload ?? []),
    healthPort: count(flags.healthPort, 'WARREN_HEALTH_PORT', 'health port', 0, 65535, 0),
    metricsPort: count(flags.metricsPort, 'WARREN_METRICS_PORT', 'metrics port', 0, 65535, 0),
    inflightDir: inflight === undefined ? undefined : resolve(cwd, inflight),
    taskEnv: Object.freeze(
      Object.fromEntries(Object.entries(env).filter(([name]) => !SECRET_ENV.has(name))),
    ),
    logLevel: oneOf(pick(flags.logLevel, 'WARREN_LOG_LEVEL') ?? 'info', LOG_LEVELS, 'log level'),
    logFormat: oneOf(
      pick(flags.logFormat, 'WARREN_LOG_FORMAT') ?? 'auto',
      LOG_FORMATS,
      'log format',
    ),
  });
}
