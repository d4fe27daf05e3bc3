/** Process exit codes, part of Warren's public interface (see docs/exit-codes.md). */
export const EXIT = {
  /** Every task succeeded. */
  OK: 0,
  /** The run finished, but at least one task failed. */
  TASKS_FAILED: 1,
  /** Bad usage or bad input: flags, jobs files, rules, run ids. Nothing was started. */
  USAGE: 2,
  /** Broker or infrastructure error: unreachable broker, credentials, disk, state dir in use. */
  INFRA: 3,
  /** A bug in Warren (an unexpected exception). */
  INTERNAL: 70,
  /** Interrupted by SIGINT or SIGTERM; the run can be resumed with the same run id. */
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/**
 * The one error base. `code` is a stable SCREAMING_SNAKE identifier, `message` is one
 * lowercase line saying what failed and with which value, `exitCode` is what the CLI exits with.
 */
export class WarrenError extends Error {
  override readonly name: string = 'WarrenError';
  readonly code: string;
  readonly exitCode: ExitCode;

  constructor(
    code: string,
    message: string,
    options: { cause?: unknown; exitCode?: ExitCode } = {},
  ) {
    super(message, { cause: options.cause });
    this.code = code;
    this.exitCode = options.exitCode ?? EXIT.USAGE;
  }
}

/** Bad input or usage: exit 2. */
export class InputError extends WarrenError {
  override readonly name = 'InputError';
  constructor(code: string, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, exitCode: EXIT.USAGE });
  }
}

/** Broker, disk or other infrastructure failure: exit 3. */
export class InfraError extends WarrenError {
  override readonly name = 'InfraError';
  constructor(code: string, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, exitCode: EXIT.INFRA });
  }
}

/** Describes a Node.js system error in a few words (`no such file`, `permission denied`). */
export function describeSystemError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'not a directory';
    case 'ENOSPC':
      return 'no space left on device';
    case 'EROFS':
      return 'read-only file system';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}
