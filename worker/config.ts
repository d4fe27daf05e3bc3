// The worker's configuration: the one loader of the worker process. It refuses a bad worker
// setting before anything starts, with the same one line as ever; the tasker's commands never
// read these settings.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { BrokerOptions } from '../shared/broker.js';
import { loadBroker, loadQueue, loadSigningKey } from '../shared/config/broker.js';
import { loadClass } from '../shared/config/classes.js';
import { taskEnvironment } from '../shared/config/environment.js';
import { type LogFlags, type LogSettings, loadLogging } from '../shared/config/logging.js';
import { loadPaths, type PathFlags, type Paths } from '../shared/config/paths.js';
import { type Environment, matching, settingReader } from '../shared/config/read.js';
import { loadS3, type S3Settings, uploadGlobs } from '../shared/config/s3.js';
import { DEFAULT_LONGEST_TASK } from '../shared/consumerTimeout.js';
import { formatDuration, SECOND } from '../shared/duration.js';
import { InputError } from '../shared/errors.js';
import { classQueue } from '../shared/topology.js';

/** The worker's flags as commander hands them over: strings, all optional. */
export interface WorkerFlags extends PathFlags, LogFlags {
  readonly concurrency?: string;
  readonly prefetch?: string;
  readonly queue?: string;
  readonly class?: string;
  readonly exitWhenIdle?: string;
  readonly grace?: string;
  readonly killGrace?: string;
  readonly consumerTimeout?: string;
  readonly name?: string;
  readonly leaseInterval?: string;
  readonly caFile?: string;
  readonly healthPort?: string;
  readonly metricsPort?: string;
  readonly inflightDir?: string;
  readonly bucket?: string;
  readonly upload?: readonly string[];
}

/** Everything a worker can be told, merged from defaults < environment < flags. */
export interface WorkerConfig extends Paths, LogSettings {
  /**
   * The broker, and how hard to try reaching it (see `loadBroker`; `--ca-file` for amqps).
   * A worker refuses to start without one.
   * @defaultValue none (`RABBITMQ_URL`, or `RABBITMQ_HOST` and co.)
   */
  readonly broker: BrokerOptions | undefined;
  /**
   * The queue this worker consumes: the task queue, or its size class's queue (`classQueue`).
   * @defaultValue `warren.tasks` (`WARREN_QUEUE`, `--queue`)
   */
  readonly queue: string;
  /**
   * The size class this worker serves: it takes the tasks of `<queue>.class.<name>`, those
   * the OOM killer killed on the class below (docs/running.md).
   * @defaultValue `default`: the task queue itself (`WARREN_CLASS`, `--class`)
   */
  readonly sizeClass: string;
  /**
   * Tasks a worker runs at once (and its least prefetch).
   * @defaultValue 1 (`WARREN_CONCURRENCY`, `--concurrency`)
   */
  readonly concurrency: number;
  /**
   * Deliveries a worker holds: its slots, plus tasks waiting for a free slot; from the
   * concurrency to 100 times it. Set, it is fixed. Not set, the worker holds its slots, and
   * `holdMore` more while the deliveries it sees settle within a second (short tasks, where
   * the next delivery is there when a slot frees), until a task runs two seconds.
   * @defaultValue the concurrency (`WARREN_PREFETCH`, `--prefetch`)
   */
  readonly prefetch: number;
  /**
   * Deliveries held beyond `prefetch` while tasks are short: half the slots (at least 1), or
   * 0 when the prefetch is set.
   */
  readonly holdMore: number;
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
   * Time between SIGTERM and SIGKILL when the worker stops a task, in ms.
   * @defaultValue 10 seconds (`WARREN_KILL_GRACE`, `--kill-grace`)
   */
  readonly killGraceMs: number;
  /**
   * The longest task this worker runs before the broker may take its delivery back, in ms; 0
   * leaves the broker's own `consumer_timeout` in force. On RabbitMQ 3.11.15 and later the
   * worker asks for it (plus 5 minutes for uploads and the result) as its consumer's
   * `x-consumer-timeout`, so long tasks need no cluster-wide setting; older brokers (3.10) take
   * no per-consumer timeout, and their `consumer_timeout` must be raised instead
   * (docs/brokers.md). At most 24 days.
   * @defaultValue 7 days (`WARREN_CONSUMER_TIMEOUT`, `--consumer-timeout`)
   */
  readonly longestTaskMs: number;
  /**
   * The worker's name in results, leases and slot log files; unique among the workers
   * connected to the broker (a second worker claiming a name in use refuses to start). The
   * random part of the default keeps apart two containers on one host network with one pid.
   * @defaultValue `<hostname>-<pid>-<4 random hex digits>` (`WARREN_WORKER_NAME`, `--name`)
   */
  readonly workerName: string;
  /**
   * How often a worker renews its lease on a run's attempts it holds or runs (one message per
   * run per interval, the first once a delivery of the run has been with it for a second), in
   * ms; at least 100 ms.
   * @defaultValue 15 seconds (`WARREN_LEASE_INTERVAL`, `--lease-interval`)
   */
  readonly leaseIntervalMs: number;
  /**
   * S3, for uploads of task outputs.
   * @defaultValue none: no uploads (`S3_BUCKET` or `--bucket` turns it on)
   */
  readonly s3: S3Settings | undefined;
  /**
   * Globs of outputs this worker uploads after every task it runs succeeds, beside the ones
   * each task carries from its tasker.
   * @defaultValue none (`--upload`, repeatable)
   */
  readonly upload: readonly string[];
  /**
   * Port of `/livez` and `/readyz` (for Kubernetes probes); 0 means none.
   * @defaultValue 0 (`WARREN_HEALTH_PORT`, `--health-port`)
   */
  readonly healthPort: number;
  /**
   * Port of `GET /metrics` (Prometheus); may be the health port; 0 means none.
   * @defaultValue 0 (`WARREN_METRICS_PORT`, `--metrics-port`)
   */
  readonly metricsPort: number;
  /**
   * Key tasks must be signed with (HMAC-SHA256). Only from the environment (a Kubernetes
   * Secret), never a flag.
   * @defaultValue none: unsigned tasks are taken (`WARREN_SIGNING_KEY`)
   */
  readonly signingKey: string | undefined;
  /**
   * Where the worker keeps a marker for each running task: a directory that survives a
   * container restart (an emptyDir), so that a worker whose container died with its task
   * reports it.
   * @defaultValue none (`WARREN_INFLIGHT_DIR`, `--inflight-dir`)
   */
  readonly inflightDir: string | undefined;
  /**
   * Environment tasks start from: this process's, minus Warren's own secrets (broker URL and
   * password, signing key), which a task has no business reading.
   */
  readonly taskEnv: Environment;
}

const WORKER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Shortest lease interval: renewals more often than this only load the broker. */
const MIN_LEASE_INTERVAL = 100;

/** `<hostname>-<pid>-<4 hex digits>`: hostname and pid repeat across containers of one host. */
export function defaultWorkerName(): string {
  return `${hostname().split('.')[0]}-${process.pid}-${randomBytes(2).toString('hex')}`;
}

/** The worker's one loader: defaults < environment < flags. Throws InputError on a bad value. */
export function loadWorkerConfig(
  flags: WorkerFlags,
  env: Environment = process.env,
  cwd = process.cwd(),
): WorkerConfig {
  const read = settingReader(env);
  const concurrency = read.count(
    flags.concurrency,
    'WARREN_CONCURRENCY',
    'concurrency',
    1,
    1024,
    1,
  );
  const inflight = read.text(flags.inflightDir, 'WARREN_INFLIGHT_DIR');
  const sizeClass = loadClass(env, flags.class);
  return Object.freeze({
    ...loadPaths(flags, env, cwd),
    killGraceMs: read.duration(flags.killGrace, 'WARREN_KILL_GRACE', 'kill grace', 10 * SECOND),
    longestTaskMs: read.duration(
      flags.consumerTimeout,
      'WARREN_CONSUMER_TIMEOUT',
      'consumer timeout',
      DEFAULT_LONGEST_TASK,
    ),
    broker: loadBroker(env, flags, cwd),
    queue: classQueue(loadQueue(env, flags.queue), sizeClass),
    sizeClass,
    concurrency,
    // A worker holds at least a delivery per slot, else a slot would idle with work queued.
    prefetch: read.count(
      flags.prefetch,
      'WARREN_PREFETCH',
      'prefetch',
      concurrency,
      concurrency * 100,
      concurrency,
    ),
    holdMore:
      (flags.prefetch ?? env.WARREN_PREFETCH) === undefined ? Math.ceil(concurrency / 2) : 0,
    exitWhenIdleMs: read.duration(flags.exitWhenIdle, 'WARREN_EXIT_WHEN_IDLE', 'idle time', 0),
    graceMs: read.duration(flags.grace, 'WARREN_GRACE', 'grace period', 30 * SECOND),
    workerName: matching(
      read.text(flags.name, 'WARREN_WORKER_NAME') ?? defaultWorkerName(),
      WORKER_NAME,
      'worker name',
    ),
    leaseIntervalMs: atLeast(
      read.duration(flags.leaseInterval, 'WARREN_LEASE_INTERVAL', 'lease interval', 15 * SECOND),
      MIN_LEASE_INTERVAL,
      'lease interval',
    ),
    signingKey: loadSigningKey(env),
    s3: loadS3(env, flags.bucket),
    upload: uploadGlobs(flags.upload),
    healthPort: read.count(flags.healthPort, 'WARREN_HEALTH_PORT', 'health port', 0, 65535, 0),
    metricsPort: read.count(flags.metricsPort, 'WARREN_METRICS_PORT', 'metrics port', 0, 65535, 0),
    inflightDir: inflight === undefined ? undefined : resolve(cwd, inflight),
    taskEnv: taskEnvironment(env),
    ...loadLogging(flags, env),
  });
}

function atLeast(ms: number, min: number, what: string): number {
  if (ms < min) {
    throw new InputError(
      'BAD_DURATION',
      `invalid ${what} \`${formatDuration(ms)}\`: at least ${formatDuration(min)}`,
    );
  }
  return ms;
}
