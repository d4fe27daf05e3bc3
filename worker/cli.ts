#!/usr/bin/env node
import { Command } from 'commander';
import { collect, runCli, strictProgram, VERSION } from '../shared/cli.js';
import type { WorkerFlags } from './config.js';

const program = strictProgram(new Command('worker'))
  .description('Warren worker: takes tasks from RabbitMQ, runs them and reports each outcome.')
  .version(VERSION, '-V, --version', 'print the version')
  .helpOption('-h, --help', 'show help')
  .option('--concurrency <n>', 'tasks at once (default: 1)')
  .option(
    '--prefetch <n>',
    'deliveries held, slots included, fixed (default: the slots, and more while tasks are short)',
  )
  .option('--queue <name>', 'task queue (default: warren.tasks)')
  .option(
    '--class <name>',
    'size class to serve: consume <queue>.class.<name>, where tasks the OOM killer killed on a smaller class go (default: default, the task queue)',
  )
  .option('--workdir <dir>', 'directory tasks run in (default: the current directory)')
  .option('--state-dir <dir>', 'where task logs go (default: <workdir>/.warren)')
  .option(
    '--exit-when-idle <duration>',
    'exit 0 once the queue has been empty and the worker idle this long',
  )
  .option(
    '--grace <duration>',
    'on SIGTERM, time running tasks get to finish before they are stopped (default: 30s)',
  )
  .option(
    '--kill-grace <duration>',
    'time between SIGTERM and SIGKILL when stopping a task (default: 10s)',
  )
  .option(
    '--consumer-timeout <duration>',
    "longest task this worker runs before the broker may take it back: asked as its consumer's x-consumer-timeout on RabbitMQ 3.11.15+; 0 leaves the broker's consumer_timeout (default: 7d)",
  )
  .option(
    '--name <name>',
    'name of this worker in results and log files, unique on the broker (default: <hostname>-<pid>-<random>)',
  )
  .option(
    '--lease-interval <duration>',
    "how often the worker renews its lease on a run's tasks it holds or runs (default: 15s)",
  )
  .option('--ca-file <file>', 'CA certificate (PEM) for amqps:// brokers')
  .option(
    '--health-port <port>',
    'serve /livez and /readyz on this port, for Kubernetes probes (default: none)',
  )
  .option(
    '--metrics-port <port>',
    'serve Prometheus metrics at /metrics on this port (may be the health port; default: none)',
  )
  .option(
    '--inflight-dir <dir>',
    'directory that outlives the container (an emptyDir): markers of running tasks, so a worker whose container died reports them',
  )
  .option(
    '--upload <glob>',
    'also upload outputs matching this glob after every task (repeatable; needs a bucket)',
    collect,
  )
  .option('--bucket <name>', 'S3 bucket for uploads (default: S3_BUCKET)')
  .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (default: info)')
  .option('--log-format <format>', 'auto (readable on a TTY, JSON elsewhere), json or pretty')
  .action(async (flags: WorkerFlags) => {
    // Imported when the worker starts, not for `--help`: it brings amqplib and the schemas.
    const { runWorker } = await import('./runWorker.js');
    process.exitCode = await runWorker(flags);
  });

process.exit(await runCli(program, process.argv));
