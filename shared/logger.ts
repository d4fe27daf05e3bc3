import { Writable } from 'node:stream';
import { pino } from 'pino';

export type Logger = pino.Logger;
export type LogFormat = 'auto' | 'json' | 'pretty';

export interface LoggerOptions {
  /** pino level name. @defaultValue `info` */
  readonly level: string;
  /** `auto` is readable lines on a TTY and JSON elsewhere (containers, CI). */
  readonly format: LogFormat;
  /** Scope carried on every line: `component`, and later `run`, `task`, `worker`. */
  readonly bindings?: Record<string, string>;
}

/**
 * Where readable log lines go: standard error, or, while a progress display owns the
 * terminal, a function that prints them above it.
 */
export const terminal = {
  divert: undefined as ((text: string) => void) | undefined,
  write(text: string): void {
    if (terminal.divert) terminal.divert(text);
    else process.stderr.write(text);
  },
};

/** Whether logs are readable lines on a terminal (so a progress display can share it). */
export function isReadable(format: LogFormat): boolean {
  return format === 'pretty' || (format === 'auto' && process.stderr.isTTY === true);
}

/**
 * A pino logger on standard error, writing synchronously so nothing is lost when the process
 * exits. pino-pretty is loaded only for readable output, keeping it off the start-up path of
 * containers and scripts.
 */
export async function createLogger(options: LoggerOptions): Promise<Logger> {
  const base = { level: options.level, base: { ...options.bindings } };
  if (!isReadable(options.format)) return pino(base, pino.destination({ dest: 2, sync: true }));
  const pretty = (await import('pino-pretty')).default;
  const stream = pretty({
    destination: new Writable({
      write(chunk: Buffer | string, _encoding, done) {
        terminal.write(chunk.toString());
        done();
      },
    }),
    sync: true,
    colorize: process.stderr.isTTY === true,
    translateTime: 'SYS:HH:MM:ss',
    ignore: 'pid,hostname,component,run,phase,task,attempt,worker',
  });
  return pino(base, stream);
}
