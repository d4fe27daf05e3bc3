import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { expect } from 'vitest';
import { cliEnv, waitFor } from './cli.js';

export interface TerminalRun {
  /** Every row the terminal shows or scrolled away, top to bottom, trailing spaces cut. */
  readonly rows: string[];
  readonly exitCode: number;
}

/**
 * Runs `command` (a shell line) in a real terminal, a tmux pane of `columns` x `rows`, and
 * returns what a person would read there afterwards: its scrollback and screen, as tmux drew
 * them from the bytes the program wrote (cursor moves and erasures applied). `dir` holds
 * tmux's socket and config; the server is killed before this returns.
 */
export async function inTerminal(
  command: string,
  options: {
    readonly cwd: string;
    readonly dir: string;
    readonly env?: Record<string, string | undefined>;
    readonly columns?: number;
    readonly rows?: number;
    readonly withinMs?: number;
  },
): Promise<TerminalRun> {
  const tmux = (args: string[]) =>
    execa(
      'tmux',
      ['-S', join(options.dir, 'tmux.sock'), '-f', join(options.dir, 'tmux.conf'), ...args],
      {
        cwd: options.cwd,
        env: cliEnv({ TERM: 'xterm-256color', ...options.env }),
        extendEnv: false,
      },
    );
  expect(
    (await execa('sh', ['-c', 'command -v tmux'], { reject: false })).exitCode,
    "tmux (Debian's tmux; .ci/run installs it)",
  ).toBe(0);
  writeFileSync(
    join(options.dir, 'tmux.conf'),
    'set -g history-limit 100000\nset -g remain-on-exit on\n',
  );
  const exitFile = join(options.dir, 'exit-code');
  await tmux([
    'new-session',
    '-d',
    '-x',
    String(options.columns ?? 100),
    '-y',
    String(options.rows ?? 12),
    `${command}; echo $? > ${exitFile}`,
  ]);
  try {
    await waitFor(
      () => existsSync(exitFile) && readFileSync(exitFile, 'utf8').endsWith('\n'),
      options.withinMs ?? 30_000,
      command,
    );
    // What the program wrote last may still be on its way through the pty.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const pane = await tmux(['capture-pane', '-p', '-J', '-S', '-', '-E', '-']);
    const rows = pane.stdout
      .split('\n')
      .map((row) => row.trimEnd())
      .filter((row) => !row.startsWith('Pane is dead')); // tmux's own, from remain-on-exit
    while (rows.length > 0 && rows.at(-1) === '') rows.pop();
    return { rows, exitCode: Number(readFileSync(exitFile, 'utf8').trim()) };
  } finally {
    await tmux(['kill-server']).catch(() => {});
  }
}
