import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eachTempDir, logLines, ROOT, tasker } from '../../helpers/cli.js';
import { inTerminal } from '../../helpers/terminal.js';

let dir: string;
eachTempDir((made) => (dir = made), { leftovers: 'wait' });

const TASKER = join(ROOT, 'dist', 'tasker', 'cli.js');
/** A readable log line on a terminal: `[06:05:14] INFO: ...`. */
const LOG_LINE = /^\[\d\d:\d\d:\d\d\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): (.*)$/;
/** A progress bar, or a piece of one. */
const BAR = /[\u2588\u2591]|\d+\/\d+ done, /;

describe('the progress bars on a terminal', () => {
  it('let every log line through, whole and in order, and leave no bar behind', async () => {
    writeFileSync(
      join(dir, 'jobs.sh'),
      [
        'echo prepared',
        'wait',
        'sleep 0.3',
        'sleep 0.4',
        "sh -c 'echo the input is missing >&2; exit 3'",
        'sleep 0.2',
        'false',
        'wait',
        'echo never',
      ].join('\n'),
    );
    const args = ['run', 'jobs.sh', '-j', '2', '--retries', '1', '--retry-delay', '300ms'];
    // A narrow, short terminal: long lines wrap and the log scrolls under the bars.
    const seen = await inTerminal(`node ${TASKER} ${args.join(' ')}`, {
      cwd: dir,
      dir,
      env: { WARREN_LOG_FORMAT: 'auto' },
      columns: 90,
      rows: 8,
    });
    expect(seen.exitCode).toBe(1);
    const text = seen.rows.join('\n');
    // No bar is left on the screen, and none is glued to a log line.
    expect(seen.rows.filter((row) => BAR.test(row))).toEqual([]);
    const logged = seen.rows
      .filter((row) => !row.startsWith('    | '))
      .map((row) => {
        expect(row, text).toMatch(LOG_LINE);
        return LOG_LINE.exec(row)?.[2] ?? '';
      });
    const order = [
      /^started run \S+: local mode/,
      /^phase 1\/3 phase1: 1 parallel task$/,
      /^phase phase1 ended in \S+: 1 succeeded$/,
      /^phase 2\/3 phase2: 5 parallel tasks$/,
      /^phase phase2 ended in \S+: 3 succeeded, 2 failed$/,
      /^stopping after phase phase2; later phases did not run \(--keep-going runs them anyway\)$/,
      /^2 tasks failed:$/,
    ];
    let at = -1;
    for (const line of order) {
      const next = logged.findIndex((message, index) => index > at && line.test(message));
      expect(next, `${line} after line ${at} of:\n${text}`).toBeGreaterThan(at);
      at = next;
    }
    expect(text).toContain('    | the input is missing');
    // The same lines as the run's JSON log where no terminal is: none went missing. (A state
    // dir of its own: with the first run's history it would also say it orders longest first.)
    const piped = await tasker(args, {
      cwd: dir,
      env: { WARREN_STATE_DIR: join(dir, '.warren-piped') },
    });
    expect(piped.exitCode).toBe(1);
    expect(logged).toHaveLength(logLines(piped.stderr).length);
  });
});
