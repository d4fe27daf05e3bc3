#!/usr/bin/env -S node --max-semi-space-size=2
// The young generation is kept small (the shebang's flag): the tasker's big tables live in typed
// arrays, and a small nursery keeps a million-task run's peak RSS down at no measured cost.
// Commands import what only they use when they run (cancel, collect, logs, report, fetch's
// globs; the broker and message schemas through the runner): a local run starts faster.
import { accessSync, constants, statSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { quote } from 'shell-quote';
import { collect, runCli, strictProgram, VERSION } from '../shared/cli.js';
import { type Flags, loadConfig } from '../shared/config.js';
import { checkDirectory } from '../shared/dirs.js';
import { describeSystemError, InputError } from '../shared/errors.js';
import { createLogger } from '../shared/logger.js';
import { fetchRun, formatBytes, runPrefix, s3Client } from '../shared/s3.js';
import { cleanDir } from './commands/clean.js';
import { runPhases } from './commands/runPhases.js';
import { checkReadable } from './jobs/jobsFile.js';
import {
  phaseNameOf,
  planOnce,
  planRun,
  planSweep,
  singlePhase,
  splitToParts,
} from './jobs/plan.js';
import { checkPhaseName, resolveRules } from './jobs/rules.js';
import type { SweepSource } from './jobs/sweep.js';
import { latestRun } from './ledger/session.js';
import { formatStatus } from './observe/formatStatus.js';
import { runStatus } from './observe/status.js';

type CommonFlags = Flags & { json?: boolean; failed?: boolean; outDir?: string };
type SweepFlags = { params?: string; seq?: string };

function addSweepFlags(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--params <csv>',
        'a parameter sweep: one task per CSV row, filling {column} placeholders',
      ).conflicts('seq'),
    )
    .option('--seq <n>', 'a sweep of N tasks, filling {index} with 1 to N');
}

/** The sweep asked for, checked; undefined when none. */
async function sweepOf(flags: SweepFlags): Promise<SweepSource | undefined> {
  if (flags.params !== undefined) {
    try {
      accessSync(flags.params, constants.R_OK);
      if (statSync(flags.params).isDirectory())
        throw Object.assign(new Error(), { code: 'EISDIR' });
    } catch (error) {
      throw new InputError(
        'PARAMS_UNREADABLE',
        `cannot read parameters \`${flags.params}\`: ${describeSystemError(error)}`,
      );
    }
    return { kind: 'params', file: flags.params };
  }
  if (flags.seq !== undefined) {
    if (!/^\d+$/.test(flags.seq) || Number(flags.seq) < 1 || Number(flags.seq) > 10_000_000) {
      throw new InputError(
        'BAD_NUMBER',
        `invalid --seq \`${flags.seq}\`: expected a whole number from 1 to 10000000`,
      );
    }
    return { kind: 'seq', count: Number(flags.seq) };
  }
  return undefined;
}

type RuleFlags = CommonFlags &
  SweepFlags & {
    rules?: string;
    phase?: string[];
    rest?: string;
    serial?: string[];
  };

const rulesOf = (flags: RuleFlags) =>
  resolveRules({ rules: flags.rules, phases: flags.phase, rest: flags.rest, serial: flags.serial });

function addCommon(command: Command): Command {
  return command
    .option(
      '--state-dir <dir>',
      'where run ledgers and task logs live (default: <workdir>/.warren)',
    )
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (default: info)')
    .option('--log-format <format>', 'auto (readable on a TTY, JSON elsewhere), json or pretty');
}

function addRunFlags(command: Command): Command {
  return addCommon(command)
    .option('-j, --slots <n>', 'tasks at once in local mode (default: the number of cores)')
    .option('--local', 'use the local pool even when a broker is configured')
    .option('--run-id <id>', 'run to start or resume (default: WARREN_RUN_ID, else a new id)')
    .option('--workdir <dir>', 'directory tasks run in (default: the current directory)')
    .option('--retries <n>', 'extra attempts for a failed task (default: 2)')
    .option(
      '--retry-delay <duration>',
      'delay before the first retry, doubled after each (default: 1s)',
    )
    .option('--keep-going', 'run later phases even when a phase has failed tasks')
    .option('--timeout <duration>', 'per-task time limit, e.g. 30m (default: none)')
    .option(
      '--kill-grace <duration>',
      'time between SIGTERM and SIGKILL when stopping a task (default: 10s)',
    )
    .option(
      '--upload <glob>',
      'upload the outputs matching this glob after each task succeeds (repeatable)',
      collect,
    )
    .option('--bucket <name>', 'S3 bucket for uploads (default: S3_BUCKET)')
    .option(
      '--max-tasks <n>',
      'stop adding tasks that tasks spawn (WARREN_SPAWN) once the run has N tasks',
    )
    .option('--http <port>', 'serve a live report and /api/status on this port while running')
    .option('--http-host <host>', 'address the live view listens on (default: 127.0.0.1)');
}

function addRuleFlags(command: Command): Command {
  return command
    .addOption(
      new Option('--rules <name>', 'built-in phase rules: asreview-cloud or makita').conflicts(
        'phase',
      ),
    )
    .option(
      '--phase <name=regex>',
      'a phase taking the lines that match REGEX (repeatable, in order)',
      collect,
    )
    .option('--rest <name>', 'the phase for lines no rule takes (default: such a line is an error)')
    .option('--serial <name>', 'run this phase serially in the tasker (repeatable)', collect);
}

const logFor = async (flags: CommonFlags) => {
  const config = loadConfig(process.env, flags);
  checkDirectory(config.workdir, 'working directory');
  // On a broker the workers upload, with their own bucket; here the tasker's slots do.
  if (config.upload.length > 0 && !config.s3 && (!config.broker || config.local)) {
    throw new InputError(
      'NO_BUCKET',
      '--upload needs a bucket: set S3_BUCKET (and S3_ENDPOINT_URL for a non-AWS server) or --bucket',
    );
  }
  const log = await createLogger({
    level: config.logLevel,
    format: config.logFormat,
    bindings: { component: 'tasker' },
  });
  return { config, log };
};

const program = strictProgram(new Command('tasker'))
  .description(
    'Warren tasker: splits jobs files into phases and runs them, locally or through RabbitMQ.',
  )
  .version(VERSION, '-V, --version', 'print the version')
  .helpOption('-h, --help', 'show help');

addRuleFlags(
  addCommon(
    program
      .command('split')
      .description('split a jobs file into one file per phase (JOBS.part1, JOBS.part2, ...)')
      .argument('<jobs>', 'the jobs file'),
  ).option('--out-dir <dir>', 'where to write the parts (default: beside the jobs file)'),
).action(async (jobs: string, flags: RuleFlags & { outDir?: string }) => {
  const rules = rulesOf(flags);
  const parts = await splitToParts(jobs, rules, flags.outDir);
  const width = Math.max(...parts.map((part) => part.file.length));
  const nameWidth = Math.max(...parts.map((part) => part.name.length));
  for (const part of parts) {
    process.stdout.write(
      `${part.file.padEnd(width)}  ${part.name.padEnd(nameWidth)}  ${part.kind.padEnd(8)}  ${part.lines} line${part.lines === 1 ? '' : 's'}\n`,
    );
  }
});

addSweepFlags(
  addRuleFlags(
    addRunFlags(
      program
        .command('run')
        .description('run every phase of a jobs file in order, with a barrier between phases')
        .argument('<jobs>', 'the jobs file'),
    ),
  ),
).action(async (jobs: string, flags: RuleFlags) => {
  const rules = rulesOf(flags);
  await checkReadable(jobs);
  const sweep = await sweepOf(flags);
  const { config, log } = await logFor(flags);
  process.exitCode = await runPhases(config, log, {
    command: `run ${quote([jobs])}${flags.rules ? ` --rules ${flags.rules}` : ''}${sweepText(flags)}`,
    plan: (run) => planRun(jobs, rules, run, config.stateDir, sweep),
  });
});

const sweepText = (flags: SweepFlags) =>
  flags.params !== undefined
    ? ` --params ${quote([flags.params])}`
    : flags.seq !== undefined
      ? ` --seq ${flags.seq}`
      : '';

addSweepFlags(
  addRunFlags(
    program
      .command('send')
      .description(
        'run every line of a file as one parallel phase; with --params or --seq, FILE is a command template',
      )
      .argument('<file>', 'the file of commands (with --params or --seq: the command template)')
      .option('--phase <name>', 'name of the phase (default: the file name, or `sweep`)')
      .option(
        '--no-wait',
        'publish the tasks and exit, without waiting for results (needs a broker)',
      ),
  ),
).action(
  async (file: string, flags: CommonFlags & SweepFlags & { phase?: string; wait: boolean }) => {
    const sweep = await sweepOf(flags);
    const name = checkPhaseName(flags.phase ?? (sweep ? 'sweep' : phaseNameOf(file)));
    const rules = singlePhase(name, file);
    if (!sweep) await checkReadable(file);
    const { config, log } = await logFor(flags);
    if (!flags.wait && (!config.broker || config.local)) {
      throw new InputError(
        'NO_WAIT_LOCAL',
        '--no-wait needs a broker (RABBITMQ_URL): in local mode nothing would run the tasks',
      );
    }
    process.exitCode = await runPhases(config, log, {
      command: `send ${quote([file])} --phase ${name}${sweepText(flags)}${flags.wait ? '' : ' --no-wait'}`,
      plan: async (run) =>
        sweep
          ? [await planSweep(file, sweep, name, run, config.stateDir)]
          : planRun(file, rules, run, config.stateDir),
      noWait: !flags.wait,
    });
  },
);

addRunFlags(
  program
    .command('once')
    .description('run one serial step in the tasker, skipped if it already succeeded in this run')
    .argument('<name>', 'name of the step')
    .argument(
      '<command...>',
      'the command, after `--`: one argument is a shell command line, several are quoted',
    ),
).action(async (name: string, words: string[], flags: CommonFlags) => {
  const step = checkPhaseName(name);
  const command = words.length === 1 ? (words[0] as string) : quote(words);
  if (command.trim() === '')
    throw new InputError('EMPTY_COMMAND', `step \`${name}\` has an empty command`);
  const { config, log } = await logFor(flags);
  process.exitCode = await runPhases(config, log, {
    command: `once ${step} -- ${command}`,
    plan: async (run) => [planOnce(step, command, run, config.stateDir)],
  });
});

addCommon(
  program
    .command('clean')
    .description('empty a working directory, keeping the state dir; refuses / and your home')
    .argument('<dir>', 'the directory to empty'),
).action(async (dir: string, flags: CommonFlags) => {
  // Keep both the state dir of the directory being cleaned and the one in force here.
  const here = loadConfig(process.env, flags);
  const there = loadConfig(process.env, { ...flags, workdir: dir });
  const removed = await cleanDir(dir, [here.stateDir, there.stateDir]);
  process.stdout.write(
    `emptied ${dir}: removed ${removed.length} entr${removed.length === 1 ? 'y' : 'ies'}\n`,
  );
});

addCommon(
  program
    .command('cancel')
    .description(
      'cancel a run: workers stop its running tasks and drop its queued ones (default: the latest run)',
    )
    .option('--run-id <id>', 'the run (default: WARREN_RUN_ID, else the latest)')
    .option(
      '--workdir <dir>',
      'working directory whose .warren to use (default: the current directory)',
    ),
).action(async (flags: CommonFlags) => {
  const { config, log } = await logFor(flags);
  const run = config.runId ?? (await latestRun(config.stateDir));
  const { cancelRun } = await import('./commands/cancel.js');
  const done = await cancelRun(config, run, log);
  const how = [
    done.taskerAsked ? 'its tasker is stopping and records it' : 'recorded in its ledger',
    done.workersTold
      ? 'workers told to stop its tasks'
      : 'no broker configured, so no workers told',
  ];
  process.stdout.write(`cancelled run ${run}: ${how.join('; ')}\n`);
});

addCommon(
  program
    .command('report')
    .description(
      'write one self-contained HTML file about a run: timeline, durations, slowest tasks, failures, slots',
    )
    .option('-o, --output <file>', 'where to write it (default: warren-report-<run>.html)')
    .option('--run-id <id>', 'the run (default: WARREN_RUN_ID, else the latest)')
    .option(
      '--workdir <dir>',
      'working directory whose .warren holds the run (default: the current directory)',
    ),
).action(async (flags: CommonFlags & { output?: string }) => {
  const config = loadConfig(process.env, flags);
  const run = config.runId ?? (await latestRun(config.stateDir));
  const { buildReport } = await import('./observe/report.js');
  const html = await buildReport(config.stateDir, run);
  const output = flags.output ?? `warren-report-${run}.html`;
  try {
    writeFileSync(output, html);
  } catch (error) {
    throw new InputError(
      'OUTPUT_UNWRITABLE',
      `cannot write \`${output}\`: ${describeSystemError(error)}`,
    );
  }
  process.stdout.write(`wrote ${output} (run ${run}, ${formatBytes(Buffer.byteLength(html))})\n`);
});

addCommon(
  program
    .command('logs')
    .description("print a task's stdout and stderr; -f follows a running task until it ends")
    .argument('<task>', 'a task id prefix (4+ hex digits) or a piece of its command')
    .option('-f, --follow', 'keep printing what the task writes until it ends')
    .option('--run-id <id>', 'the run (default: WARREN_RUN_ID, else the latest)')
    .option(
      '--workdir <dir>',
      'working directory whose .warren holds the run (default: the current directory)',
    ),
).action(async (query: string, flags: CommonFlags & { follow?: boolean }) => {
  const config = loadConfig(process.env, flags);
  const run = config.runId ?? (await latestRun(config.stateDir));
  const { showLogs } = await import('./observe/logs.js');
  await showLogs({
    stateDir: config.stateDir,
    run,
    query,
    follow: flags.follow ?? false,
    streams: {
      out: (bytes) => process.stdout.write(bytes),
      err: (bytes) => process.stderr.write(bytes),
    },
    note: (line) => process.stderr.write(`tasker: ${line}\n`),
  });
});

addCommon(
  program
    .command('collect')
    .description(
      "record the results waiting in a run's queue (a `send --no-wait` run whose tasker exited)",
    )
    .option('--run-id <id>', 'the run (default: WARREN_RUN_ID, else the latest)')
    .option('--wait', 'wait until every published task of the run has a result')
    .option('--json', 'print what was collected as JSON on stdout')
    .option(
      '--workdir <dir>',
      'working directory whose .warren holds the run (default: the current directory)',
    ),
).action(async (flags: CommonFlags & { wait?: boolean }) => {
  const { config, log } = await logFor(flags);
  const run = config.runId ?? (await latestRun(config.stateDir));
  const { collectRun } = await import('./commands/collect.js');
  const collected = await collectRun(config, run, log.child({ run }), flags.wait ?? false);
  if (flags.json) process.stdout.write(`${JSON.stringify(collected)}\n`);
  process.exitCode = collected.exitCode;
});

addCommon(
  program
    .command('fetch')
    .description("download a run's uploaded outputs from S3 (default: the latest run)")
    .argument('<dest>', 'directory to download into (made if missing)')
    .option('--run-id <id>', 'the run (default: WARREN_RUN_ID, else the latest)')
    .option('--glob <glob>', 'only paths matching this glob (repeatable)', collect)
    .option('--bucket <name>', 'S3 bucket (default: S3_BUCKET)')
    .option('--json', 'print what was fetched as JSON')
    .option(
      '--workdir <dir>',
      'working directory whose .warren names the latest run (default: the current directory)',
    ),
).action(async (dest: string, flags: CommonFlags & { glob?: string[] }) => {
  const config = loadConfig(process.env, flags);
  const s3 = config.s3;
  if (!s3) {
    throw new InputError(
      'NO_BUCKET',
      'tasker fetch needs a bucket: set S3_BUCKET (and S3_ENDPOINT_URL for a non-AWS server) or --bucket',
    );
  }
  const run = config.runId ?? (await latestRun(config.stateDir));
  const picomatch = flags.glob?.length ? (await import('picomatch')).default : undefined;
  const match = picomatch?.(flags.glob ?? [], { dot: true });
  const done = await fetchRun({
    client: await s3Client(s3),
    settings: s3,
    run,
    dest,
    match,
  });
  const from = `s3://${s3.bucket}/${runPrefix(s3, run)}`;
  process.stdout.write(
    flags.json
      ? `${JSON.stringify({ run, from, dest, ...done })}\n`
      : `fetched run ${run} from ${from} into ${dest}: ${done.downloaded} file${done.downloaded === 1 ? '' : 's'} (${formatBytes(done.bytes)}), ${done.skipped} already there\n`,
  );
});

addCommon(
  program
    .command('status')
    .description("show a run's phases and tasks (default: the latest run)")
    .option('--run-id <id>', 'the run (default: WARREN_RUN_ID, else the latest)')
    .option(
      '--workdir <dir>',
      'working directory whose .warren to read (default: the current directory)',
    )
    .option('--json', 'print JSON (see docs/ledger.md)')
    .option('--failed', 'list failed tasks with their errors')
    .option('--watch', 'refresh every second while the run is running (in place on a terminal)'),
).action(async (flags: CommonFlags & { watch?: boolean }) => {
  const config = loadConfig(process.env, flags);
  const run = config.runId ?? (await latestRun(config.stateDir));
  const render = async () => {
    const status = await runStatus(config.stateDir, run);
    if (!flags.json) return { status, text: formatStatus(status, flags.failed ?? false) };
    const tasks = flags.failed
      ? status.tasks.filter((task) => task.state === 'failed')
      : status.tasks;
    return { status, text: `${JSON.stringify({ ...status, tasks }, null, 2)}\n` };
  };
  let shown = '';
  for (;;) {
    const { status, text } = await render();
    if (!flags.watch) {
      process.stdout.write(text);
      return;
    }
    if (process.stdout.isTTY) {
      // Home, clear the screen, draw: the status stays in place.
      process.stdout.write(`\x1b[H\x1b[2J${text}`);
    } else if (text !== shown) {
      // Elsewhere (a pipe, kubectl logs): each change once.
      process.stdout.write(`${shown ? '\n' : ''}${text}`);
    }
    shown = text;
    if (status.state !== 'running') return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
});

process.exit(await runCli(program, process.argv));
