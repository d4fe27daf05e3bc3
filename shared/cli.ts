import { createRequire } from 'node:module';
import { type Command, CommanderError } from 'commander';
import { EXIT, WarrenError } from './errors.js';

/** Warren's version, from package.json. */
export const VERSION: string = (
  createRequire(import.meta.url)('../../package.json') as { version: string }
).version;

/** Collects a repeatable flag's values in order. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/**
 * Makes a commander program behave as Warren's CLIs do: unknown flags and bad usage are one
 * line on stderr and exit 2; help and version exit 0.
 */
export function strictProgram(program: Command): Command {
  program
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      outputError: (message, write) =>
        write(`${program.name()}: ${message.replace(/^error: /, '').trim()}\n`),
    });
  return program;
}

/**
 * Runs a CLI to its exit code. A WarrenError is one line on stderr (`tasker: cannot read jobs
 * file ...`) and its exit code; anything else is a bug, reported with its stack and exit 70.
 */
export async function runCli(program: Command, argv: readonly string[]): Promise<number> {
  try {
    await program.parseAsync(argv as string[]);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    if (error instanceof WarrenError) {
      process.stderr.write(`${program.name()}: ${error.message}\n`);
      return error.exitCode;
    }
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(
      `${program.name()}: internal error (a bug in Warren; please report it): ${detail}\n`,
    );
    return EXIT.INTERNAL;
  }
}
