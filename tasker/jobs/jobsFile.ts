import { type FileHandle, open } from 'node:fs/promises';
import split2 from 'split2';
import { describeSystemError, InputError } from '../../shared/errors.js';

/** Longest logical line accepted, in bytes of text: longer is almost surely not a command. */
export const MAX_LINE = 1024 * 1024;

/**
 * Fails with the reader's own message when a jobs file cannot be opened (or, for rules that
 * check the whole file, such as asreview-cloud's, is not one they split): run before
 * connecting to anything, so bad input is reported as such (exit 2), not as a broker error.
 */
export async function checkReadable(
  path: string,
  rules?: { readonly check?: (path: string) => Promise<void> },
): Promise<void> {
  if (rules?.check) return rules.check(path);
  const entries = readJobs(path);
  try {
    await entries.next();
  } finally {
    await entries.return(undefined);
  }
}

/** Opens a jobs file for reading; a missing file, a directory or no permission is an InputError. */
export async function openJobs(path: string): Promise<FileHandle> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, 'r');
    if ((await handle.stat()).isDirectory()) {
      throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    }
    return handle;
  } catch (error) {
    await handle?.close().catch(() => {});
    throw unreadable(path, error);
  }
}

/** The error of a jobs file that cannot be opened or read. */
export const unreadable = (path: string, error: unknown): InputError =>
  new InputError(
    'JOBS_UNREADABLE',
    `cannot read jobs file \`${path}\`: ${describeSystemError(error)}`,
    {
      cause: error,
    },
  );

/** One entry of a jobs file: a command (possibly continued over lines) or a `wait` barrier. */
export type JobEntry =
  | { readonly kind: 'command'; readonly line: number; readonly text: string }
  | { readonly kind: 'wait'; readonly line: number };

/**
 * Reads a jobs file line by line without loading it whole. Blank lines and `#` comments are
 * skipped, CRLF endings and a missing final newline are fine, a line ending in `\` continues
 * on the next (kept as written, so the shell sees what the author wrote), and a line that is
 * exactly `wait` is a barrier.
 */
export async function* readJobs(path: string): AsyncGenerator<JobEntry> {
  const handle = await openJobs(path);
  const source = handle.createReadStream();
  const lines = source.pipe(split2(/\r?\n/, { maxLength: MAX_LINE + 1 }));
  source.on('error', (error) => lines.destroy(error));
  let number = 0;
  let pending: { line: number; parts: string[]; size: number } | undefined;
  try {
    for await (const raw of lines as AsyncIterable<string>) {
      number++;
      const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (text.length > MAX_LINE || (pending && pending.size + text.length > MAX_LINE)) {
        throw new InputError(
          'LINE_TOO_LONG',
          `line ${pending?.line ?? number} of \`${path}\` is longer than 1 MiB`,
        );
      }
      if (text.includes('\0')) {
        throw new InputError(
          'JOBS_BINARY',
          `\`${path}\` is not a text file: NUL byte on line ${number}`,
        );
      }
      if (pending) {
        pending.parts.push(text);
        pending.size += text.length + 1;
        if (text.endsWith('\\')) continue;
        yield { kind: 'command', line: pending.line, text: pending.parts.join('\n') };
        pending = undefined;
        continue;
      }
      const trimmed = text.trim();
      if (trimmed === '' || trimmed.startsWith('#')) continue;
      if (trimmed === 'wait') {
        yield { kind: 'wait', line: number };
        continue;
      }
      if (text.endsWith('\\')) {
        pending = { line: number, parts: [text], size: text.length + 1 };
        continue;
      }
      yield { kind: 'command', line: number, text };
    }
  } catch (error) {
    if (error instanceof InputError) throw error;
    if (error instanceof Error && error.message === 'maximum buffer reached') {
      throw new InputError(
        'LINE_TOO_LONG',
        `line ${number + 1} of \`${path}\` is longer than 1 MiB`,
      );
    }
    throw unreadable(path, error);
  } finally {
    lines.destroy();
    await handle.close().catch(() => {});
  }
  if (pending) yield { kind: 'command', line: pending.line, text: pending.parts.join('\n') };
}
