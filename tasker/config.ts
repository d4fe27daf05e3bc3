// The tasker's configuration, one loader per kind of command. Each reads and validates only what
// its commands use: `tasker status` never trips over a worker's `WARREN_PREFETCH`, and a user who
// keeps the worker's settings in a shared environment can still read a run.

import { availableParallelism } from 'node:os';
import type { BrokerOptions } from '../shared/broker.js';
import { loadBroker, loadQueue, loadSigningKey } from '../shared/config/broker.js';
import { loadClasses } from '../shared/config/classes.js';
import { taskEnvironment } from '../shared/config/environment.js';
import { type LogFlags, type LogSettings, loadLogging } from '../shared/config/logging.js';
import { loadPaths, type PathFlags, type Paths } from '../shared/config/paths.js';
import {
  checkRunId,
  type Environment,
  integer,
  oneOf,
  settingReader,
} from '../shared/config/read.js';
import { loadS3, type S3Settings, uploadGlobs } from '../shared/config/s3.js';
import { DEFAULT_LONGEST_TASK } from '../shared/consumerTimeout.js';
import { MINUTE, SECOND } from '../shared/duration.js';

/** The tasker's flags as commander hands them over: strings and booleans, all optional. */
export interface TaskerFlags extends PathFlags, LogFlags {
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
  readonly lostAfter?: string;
  readonly local?: boolean;
  readonly bucket?: string;
  readonly upload?: readonly string[];
  readonly classes?: string;
  readonly order?: string;
}

/** What every command about one run reads: where its state is, and which run. */
export interface RunLookup extends Paths {
  /**
   * Run to start, resume or look at; a new id (`run`) or the latest run (`status`, ...) when
   * absent.
   * @defaultValue none (`WARREN_RUN_ID`, `--run-id`)
   */
  readonly runId: string | undefined;
}

/** What `tasker fetch` reads: the run, and the bucket its outputs went to. */
export interface FetchConfig extends RunLookup {
  /**
   * S3, where the run's outputs were uploaded.
   * @defaultValue none (`S3_BUCKET` or `--bucket`; `fetch` refuses to start without one)
   */
  readonly s3: S3Settings | undefined;
}

/** How a tasker command reaches the broker and the task queue. */
export interface TaskerBrokerSettings {
  /**
   * The broker and how hard to try reaching it (see `loadBroker`).
   * @defaultValue none: runs use the local pool (`RABBITMQ_URL`, or `RABBITMQ_HOST` and co.)
   */
  readonly broker: BrokerOptions | undefined;
  /**
   * The task queue.
   * @defaultValue `warren.tasks` (`WARREN_QUEUE`)
   */
  readonly queue: string;
  /**
   * Redeliveries of a task (after its worker died or lost it) before the broker gives up on it
   * and the run records it `lost`; the task queue's `x-delivery-limit`.
   * @defaultValue 4 (`WARREN_DELIVERY_LIMIT`)
   */
  readonly deliveryLimit: number;
  /**
   * The longest task, as the task queues' `x-consumer-timeout` (plus 5 minutes for uploads and
   * the result) when the tasker creates them on RabbitMQ 3.11.15 or later: long tasks then need
   * no cluster-wide `consumer_timeout`. Older brokers (3.10) take no such argument; a queue
   * created earlier keeps what it was created with (docs/brokers.md). 0 adds none.
   * @defaultValue 7 days (`WARREN_CONSUMER_TIMEOUT`)
   */
  readonly consumerTimeoutMs: number;
  /**
   * Tasks published and not yet confirmed, at most.
   * @defaultValue 1000 (`WARREN_PUBLISH_WINDOW`)
   */
  readonly publishWindow: number;
  /**
   * Most tasks in one message: short tasks travel in batches (docs/protocol.md); 1 sends every
   * task on its own (for workers that do not read batches).
   * @defaultValue 64 (`WARREN_BATCH`)
   */
  readonly batchSize: number;
}

/** What `tasker cancel` and `tasker collect` read: the run, the log, the broker. */
export interface BrokerCommandConfig extends RunLookup, LogSettings, TaskerBrokerSettings {}

/** What `tasker run`, `send` and `once` read. */
export interface RunConfig extends BrokerCommandConfig {
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
   * @defaultValue 0 (`--http`)
   */
  readonly httpPort: number;
  /**
   * Address the live view listens on.
   * @defaultValue `127.0.0.1` (`--http-host`)
   */
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
   * Through a broker: a task of the running phase whose attempt is nowhere (not waiting on the
   * broker, not held or running on a worker, not finished) for this long vanished (its queue
   * purged or deleted) and is published again, in ms; with nobody consuming, a quarter of it.
   * 0: such tasks are said, never published again.
   * @defaultValue 1 minute (`WARREN_LOST_AFTER`, `--lost-after`)
   */
  readonly lostAfterMs: number;
  /**
   * Size classes, smallest first, the first `default`: a task the OOM killer killed on one is
   * published again to the next, without using a retry (workers serve a class with `--class`).
   * Needs a broker.
   * @defaultValue none: an OOM kill is a failure as any other (`WARREN_CLASSES`, `--classes`)
   */
  readonly classes: readonly string[];
  /**
   * The order a parallel phase's tasks are published in: `longest` expected first (by how long
   * each command took the last time it succeeded in a run of the state dir; commands with no
   * history first), or `file` order. Unset: `longest`, but `file` for `--rules asreview-cloud`,
   * whose parts may hold lines that read what earlier lines of the part write.
   * @defaultValue unset (`WARREN_ORDER`, `--order`)
   */
  readonly order: 'longest' | 'file' | undefined;
  /**
   * Run with the local pool even when a broker is configured.
   * @defaultValue false (`--local`)
   */
  readonly local: boolean;
  /**
   * S3, for uploads of task outputs by the tasker's own slots (workers use their own bucket).
   * @defaultValue none: no uploads (`S3_BUCKET` or `--bucket` turns it on)
   */
  readonly s3: S3Settings | undefined;
  /**
   * With a bucket set (`s3`): share the duration history through it. Each session of a run
   * uploads its ledger to `<prefix>/.warren/ledgers/<run>.jsonl` when it ends, and a run's start
   * fetches the ledgers of other state dirs' runs from there (docs/running.md). Off: neither.
   * @defaultValue true (`WARREN_HISTORY_S3`: `on` or `off`)
   */
  readonly historyS3: boolean;
  /**
   * Globs of outputs to upload after a task succeeds, put in every task of the run.
   * @defaultValue none (`--upload`, repeatable)
   */
  readonly upload: readonly string[];
  /**
   * Key for signing tasks: HMAC-SHA256. Only from the environment (a Kubernetes Secret), never
   * a flag.
   * @defaultValue none: tasks are not signed (`WARREN_SIGNING_KEY`)
   */
  readonly signingKey: string | undefined;
  /**
   * Environment tasks start from: this process's, minus Warren's own secrets (broker URL and
   * password, signing key), which a task has no business reading.
   */
  readonly taskEnv: Environment;
}

/** Reads the state directory and run id: `tasker status`, `logs`, `report`. */
export function loadRunLookup(
  flags: TaskerFlags,
  env: Environment = process.env,
  cwd = process.cwd(),
): RunLookup {
  const runId = settingReader(env).text(flags.runId, 'WARREN_RUN_ID');
  return Object.freeze({
    ...loadPaths(flags, env, cwd),
    runId: runId === undefined ? undefined : checkRunId(runId),
  });
}

/** Reads what `tasker fetch` needs: the run and the bucket. */
export function loadFetchConfig(
  flags: TaskerFlags,
  env: Environment = process.env,
  cwd = process.cwd(),
): FetchConfig {
  return Object.freeze({ ...loadRunLookup(flags, env, cwd), s3: loadS3(env, flags.bucket) });
}

function loadTaskerBroker(env: Environment, cwd: string): TaskerBrokerSettings {
  const read = settingReader(env);
  return {
    broker: loadBroker(env, {}, cwd),
    queue: loadQueue(env, undefined),
    deliveryLimit: read.count(undefined, 'WARREN_DELIVERY_LIMIT', 'delivery limit', 1, 1000, 4),
    consumerTimeoutMs: read.duration(
      undefined,
      'WARREN_CONSUMER_TIMEOUT',
      'consumer timeout',
      DEFAULT_LONGEST_TASK,
    ),
    publishWindow: read.count(
      undefined,
      'WARREN_PUBLISH_WINDOW',
      'publish window',
      1,
      100_000,
      1000,
    ),
    batchSize: read.count(undefined, 'WARREN_BATCH', 'batch size', 1, 1000, 64),
  };
}

/** Reads what `tasker cancel` and `tasker collect` need: the run, the log and the broker. */
export function loadBrokerCommandConfig(
  flags: TaskerFlags,
  env: Environment = process.env,
  cwd = process.cwd(),
): BrokerCommandConfig {
  return Object.freeze({
    ...loadRunLookup(flags, env, cwd),
    ...loadLogging(flags, env),
    ...loadTaskerBroker(env, cwd),
  });
}

/** What `tasker collect` reads: a broker command's, and the key dead-lettered tasks are checked with. */
export interface CollectConfig extends BrokerCommandConfig {
  /**
   * Key the run's tasks were signed with: with it, only the tasker's own signed tasks that the
   * broker dead-lettered count as the run's (`rejected` or `lost`).
   * @defaultValue none (`WARREN_SIGNING_KEY`)
   */
  readonly signingKey: string | undefined;
}

/** Reads what `tasker collect` needs. */
export function loadCollectConfig(
  flags: TaskerFlags,
  env: Environment = process.env,
  cwd = process.cwd(),
): CollectConfig {
  return Object.freeze({
    ...loadBrokerCommandConfig(flags, env, cwd),
    signingKey: loadSigningKey(env),
  });
}

/** Reads what `tasker run`, `send` and `once` need. Throws InputError on a bad value. */
export function loadRunConfig(
  flags: TaskerFlags,
  env: Environment = process.env,
  cwd = process.cwd(),
): RunConfig {
  const read = settingReader(env);
  const order = read.text(flags.order, 'WARREN_ORDER');
  return Object.freeze({
    ...loadRunLookup(flags, env, cwd),
    slots: read.count(
      flags.slots,
      'WARREN_SLOTS',
      'number of slots',
      1,
      1024,
      availableParallelism(),
    ),
    retries: read.count(flags.retries, 'WARREN_RETRIES', 'number of retries', 0, 100, 2),
    retryDelayMs: read.duration(flags.retryDelay, 'WARREN_RETRY_DELAY', 'retry delay', SECOND),
    keepGoing: flags.keepGoing ?? false,
    timeoutMs: read.duration(flags.timeout, 'WARREN_TIMEOUT', 'timeout', 0),
    killGraceMs: read.duration(flags.killGrace, 'WARREN_KILL_GRACE', 'kill grace', 10 * SECOND),
    lostAfterMs: read.duration(flags.lostAfter, 'WARREN_LOST_AFTER', 'lost-after bound', MINUTE),
    local: flags.local ?? false,
    classes: loadClasses(env, flags.classes),
    order: order === undefined ? undefined : oneOf(order, ['longest', 'file'], 'order'),
    ...loadTaskerBroker(env, cwd),
    maxTasks:
      flags.maxTasks === undefined ? undefined : integer(flags.maxTasks, '--max-tasks', 1, 1e9),
    httpPort: flags.http === undefined ? 0 : integer(flags.http, '--http port', 1, 65535),
    httpHost: flags.httpHost ?? '127.0.0.1',
    signingKey: loadSigningKey(env),
    s3: loadS3(env, flags.bucket),
    historyS3:
      oneOf(
        read.text(undefined, 'WARREN_HISTORY_S3') ?? 'on',
        ['on', 'off'],
        'WARREN_HISTORY_S3',
      ) === 'on',
    upload: uploadGlobs(flags.upload),
    taskEnv: taskEnvironment(env),
    ...loadLogging(flags, env),
  });
}
