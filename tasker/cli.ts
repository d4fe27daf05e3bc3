#!/usr/bin/env -S node --max-semi-space-size=2
// The young generation is kept small (the shebang's flag): the tasker's big tables live in typed
// arrays, and a small nursery keeps a million-task run's peak RSS down at no measured cost.
// This file is the program only: commands, flags, descriptions. Each command's action lives in
// tasker/commands/ and is imported when that command runs, so a command loads (and its
// configuration reads) only what it uses, and a local run starts faster.
import { Command, Option } from 'commander';
import { collect, runCli, strictProgram, VERSION } from '../shared/cli.js';

/**
 * An action whose module is imported only when its command runs: `tasker status` does not load
 * the runner, and a local `tasker run` loads neither the broker's client nor the message schemas.
 * The exit code it returns becomes the process's.
 */
const lazy =
  <A extends unknown[]>(load: () => Promise<(...args: A) => Promise<number>>) =>
  async (...args: A): Promise<void> => {
    process.exitCode = await (await load())(...args);
  };

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

function addCommon(command: Command): Command {
  return command
    .option(
      '--state-dir <dir>',
      'where run ledgers and task logs live (default: <workdir>/.warren)',
    )
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (default: info)')
    .option('--log-format <format>', 'auto (readable on a TTY, JSON elsewhere), json or pretty');
}

function addRunFlags(
  command: Command,
  runIdHelp = 'run to start or resume (default: WARREN_RUN_ID, else a new id)',
): Command {
  return addCommon(command)
    .option('-j, --slots <n>', 'tasks at once in local mode (default: the number of cores)')
    .option('--local', 'use the local pool even when a broker is configured')
    .option(
      '--classes <list>',
      'size classes, smallest first, e.g. default,large: a task the OOM killer killed goes to the next class (workers: --class); needs a broker',
    )
    .option('--run-id <id>', runIdHelp)
    .option('--workdir <dir>', 'directory tasks run in (default: the current directory)')
    .option('--retries <n>', 'extra attempts for a failed task (default: 2)')
    .option(
      '--retry-delay <duration>',
      'delay before the first retry, doubled after each (default: 1s)',
    )
    .option('--keep-going', 'run later phases even when a phase has failed tasks')
    .option(
      '--order <order>',
      'publish parallel tasks `longest` expected first (from earlier runs) or in `file` order (default: longest; file with --rules asreview-cloud)',
    )
    .option('--timeout <duration>', 'per-task time limit, e.g. 30m (default: none)')
    .option(
      '--kill-grace <duration>',
      'time between SIGTERM and SIGKILL when stopping a task (default: 10s)',
    )
    .option(
      '--lost-after <duration>',
      'through a broker: publish again a task that is nowhere (queue purged or deleted) for this long (default: 1m; 0: only say so)',
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
).action(lazy(async () => (await import('./commands/split.js')).splitCommand));

addSweepFlags(
  addRuleFlags(
    addRunFlags(
      program
        .command('run')
        .description('run every phase of a jobs file in order, with a barrier between phases')
        .argument('<jobs>', 'the jobs file'),
    ),
  ),
).action(lazy(async () => (await import('./commands/run.js')).runCommand));

addSweepFlags(
  addRunFlags(
    program
      .command('send')
      .description(
        'run every line of a file as one parallel phase; with --params or --seq, FILE is a command template',
      )
      .argument('<file>', 'the file of commands (with --params or --seq: the command template)')
      .option('--phase <name>', 'name of the phase (default: the file name, or `sweep`)')
      .addOption(
        new Option(
          '--serial',
          'run the lines one at a time, in file order, in the tasker (as asreview-cloud ran part 1)',
        ).conflicts('wait'),
      )
      .option(
        '--no-wait',
        'publish the tasks and exit, without waiting for results (needs a broker)',
      ),
  ),
).action(lazy(async () => (await import('./commands/run.js')).sendCommand));

addRunFlags(
  program
    .command('once')
    .description('run one serial step in the tasker, skipped if it already succeeded in this run')
    .argument('<name>', 'name of the step')
    .argument(
      '<command...>',
      'the command, after `--`: one argument is a shell command line, several are quoted',
    ),
).action(lazy(async () => (await import('./commands/run.js')).onceCommand));

addRunFlags(
  program
    .command('rerun')
    .description(
      'run the failed tasks of one cause again (a group of `tasker status --failed`), in the same run',
    )
    .option('--group <n>', 'the group numbered N by `tasker status --failed`')
    .option('--class <class>', 'failed tasks of this failure class (exit, timeout, oom, ...)')
    .option(
      '--signature <text>',
      'failed tasks whose signature (masked last line) contains TEXT, as shown or as printed',
    ),
  'the run (default: WARREN_RUN_ID, else the latest)',
).action(lazy(async () => (await import('./commands/rerun.js')).rerunCommand));

addCommon(
  program
    .command('clean')
    .description('empty a working directory, keeping the state dir; refuses / and your home')
    .argument('<dir>', 'the directory to empty'),
).action(lazy(async () => (await import('./commands/clean.js')).cleanCommand));

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
).action(lazy(async () => (await import('./commands/cancelCommand.js')).cancelCommand));

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
).action(lazy(async () => (await import('./commands/report.js')).reportCommand));

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
).action(lazy(async () => (await import('./commands/logs.js')).logsCommand));

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
).action(lazy(async () => (await import('./commands/collectCommand.js')).collectCommand));

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
).action(lazy(async () => (await import('./commands/fetch.js')).fetchCommand));

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
).action(lazy(async () => (await import('./commands/status.js')).statusCommand));

process.exit(await runCli(program, process.argv));
