import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Launcher, needsOwnShell } from '../../exec/launcher.js';
import { runTask, type TaskContext } from '../../exec/runTask.js';
import { SlotLog } from '../../exec/slotLog.js';
import { PROTOCOL_VERSION, type TaskMessage } from '../../shared/protocol.js';
import { taskId } from '../../shared/taskId.js';
import { eachTempDir } from '../helpers/cli.js';

let dir: string;
let context: TaskContext;
eachTempDir(
  (made) => {
    dir = made;
    context = {
      launcher: new Launcher({ env: { PATH: process.env.PATH }, graceMs: 500 }),
      workdir: dir,
      log: new SlotLog(join(dir, '.warren'), 'test-1'),
      worker: 'test-1',
      host: 'here',
    };
  },
  {
    leftovers: 'fail',
    stop: async () => {
      await context.launcher.close();
      context.log.close();
    },
  },
);

function task(command: string, extra: Partial<TaskMessage> = {}): TaskMessage {
  return {
    v: PROTOCOL_VERSION,
    run: 'run-1',
    phase: 'p',
    task: taskId('run-1', 'p', command),
    attempt: 1,
    command,
    timeoutMs: 0,
    ...extra,
  };
}

describe('runTask', () => {
  it('runs a command in the working directory with the task in its environment', async () => {
    const result = await runTask(
      task('pwd; echo "$WARREN_RUN_ID $WARREN_PHASE $WARREN_ATTEMPT"; echo oops >&2'),
      context,
    );
    expect(result).toMatchObject({
      state: 'succeeded',
      failure: null,
      exitCode: 0,
      signal: null,
      worker: 'test-1',
    });
    expect(result.stdoutTail).toBe(`${dir}\nrun-1 p 1\n`);
    expect(result.stderrTail).toBe('oops\n');
  });

  it('reports a failing command as a failed result with its exit code and stderr', async () => {
    const result = await runTask(task('echo "no such input" >&2; exit 3'), context);
    expect(result).toMatchObject({
      state: 'failed',
      failure: 'exit',
      reason: 'exit 3',
      exitCode: 3,
    });
    expect(result.stderrTail).toBe('no such input\n');
  });

  it('recognises a command killed by a signal', async () => {
    const result = await runTask(task('kill -KILL $$'), context);
    expect(result).toMatchObject({
      state: 'failed',
      failure: 'signal',
      signal: 'SIGKILL',
      exitCode: 137,
    });
  });

  it('appends each task to the slot log and records its exact byte span', async () => {
    const first = await runTask(task('echo first'), context);
    const second = await runTask(task('printf "second\\nline"; echo err >&2'), context);
    const stdout = readFileSync(join(dir, '.warren', second.logs?.stdout.file ?? ''), 'utf8');
    const span = second.logs?.stdout;
    expect(stdout.slice(span?.start, span?.end)).toBe('second\nline');
    expect(stdout.slice(first.logs?.stdout.start, first.logs?.stdout.end)).toBe('first\n');
    expect(stdout).toContain(`### warren ${second.task} attempt 1 [p] printf`);
    expect(second.logs?.stdout.file).toBe('runs/run-1/logs/test-1.out');
  });

  it('stops a task at its timeout, grandchildren included', async () => {
    const marker = join(dir, 'survived');
    const started = Date.now();
    const result = await runTask(
      task(`(sleep 3; touch ${marker}) & sleep 30`, { timeoutMs: 300 }),
      context,
    );
    expect(result).toMatchObject({ state: 'failed', failure: 'timeout', signal: 'SIGTERM' });
    expect(result.reason).toBe('timed out after 300ms (stopped with SIGTERM)');
    expect(Date.now() - started).toBeLessThan(3000);
    await new Promise((resolve) => setTimeout(resolve, 3500));
    expect(existsSync(marker)).toBe(false);
    // The slot keeps working after a kill.
    expect((await runTask(task('echo again'), context)).stdoutTail).toBe('again\n');
  });

  it('kills a task that ignores SIGTERM after the grace period', async () => {
    const result = await runTask(task("trap '' TERM; sleep 30", { timeoutMs: 200 }), context);
    expect(result).toMatchObject({ failure: 'timeout', signal: 'SIGKILL' });
  });

  it('reports a task that kills its own shell as lost, and carries on', async () => {
    const result = await runTask(task('kill -KILL $PPID; sleep 5'), context);
    expect(result).toMatchObject({ state: 'failed', failure: 'lost' });
    expect(result.reason).toMatch(/the slot's shell died/);
    expect((await runTask(task('echo alive'), context)).state).toBe('succeeded');
  });

  it('fails a task whose working directory is missing, saying so in its stderr', async () => {
    const result = await runTask(task('true', { workdir: 'no/such/dir' }), context);
    expect(result).toMatchObject({ state: 'failed', failure: 'exit' });
    expect(result.stderrTail).toMatch(/can't cd|No such file/);
  });

  it('passes quotes, newlines and dollars through to the shell untouched', async () => {
    const result = await runTask(task(`printf '%s|' "it's" 'a "b"' '$HOME' \\\n  end`), context);
    expect(result.stdoutTail).toBe(`it's|a "b"|$HOME|end|`);
  });

  it('runs commands in a subshell of the slot with the outcome of their own shell', async () => {
    // Shell syntax is parsed in the subshell, the slot's own script untouched by it.
    expect(await runTask(task('if then'), context)).toMatchObject({ state: 'failed', exitCode: 2 });
    expect((await runTask(task('echo "$WARREN_TASK_ID" | wc -c'), context)).stdoutTail).toBe(
      '17\n',
    );
    // A command asking for its shell's pid gets a shell of its own: one pid per task.
    for (const command of ['echo $$', 'kill -0 "$PPID"', 'echo $0'])
      expect(needsOwnShell(command)).toBe(true);
    expect(needsOwnShell('python sim.py --seed "$SEED" > out/$SEED.csv')).toBe(false);
    const first = (await runTask(task('echo $$', { attempt: 1 }), context)).stdoutTail;
    const second = (await runTask(task('echo $$', { attempt: 2 }), context)).stdoutTail;
    expect(first).not.toBe(second);
    // A builtin that would end or move the shell only ends or moves its own subshell.
    expect(await runTask(task('exit 3'), context)).toMatchObject({ state: 'failed', exitCode: 3 });
    expect((await runTask(task('cd /'), context)).state).toBe('succeeded');
    expect((await runTask(task('pwd'), context)).stdoutTail).toBe(`${dir}\n`);
    // A reserved word alone is a syntax error in the subshell, not in the slot's script.
    expect(await runTask(task('done'), context)).toMatchObject({ state: 'failed', exitCode: 2 });
    expect((await runTask(task('echo still here'), context)).stdoutTail).toBe('still here\n');
  });
});
