import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import split2 from 'split2';
import { describeSystemError, InfraError } from '../../shared/errors.js';

/** A task as a run's phase file holds it, with where its line is in the file. */
export interface SpooledTask {
  readonly id: string;
  readonly command: string;
  readonly offset: number;
  readonly length: number;
}

/** Formats one phase-file line: `["<task id>","<command>"]`. */
export function spoolLine(id: string, command: string): string {
  return `${JSON.stringify([id, command])}\n`;
}

/** Reads a phase file of a run in order, streaming, with each line's byte offset. */
export async function* readSpool(path: string): AsyncGenerator<SpooledTask> {
  const source = createReadStream(path);
  const lines = source.pipe(split2());
  source.on('error', (error) => lines.destroy(error));
  let offset = 0;
  try {
    for await (const line of lines as AsyncIterable<string>) {
      const length = Buffer.byteLength(line);
      if (line !== '') {
        const [id, command] = JSON.parse(line) as [string, string];
        yield { id, command, offset, length };
      }
      offset += length + 1;
    }
  } catch (error) {
    throw new InfraError(
      'SPOOL_UNREADABLE',
      `cannot read phase file \`${path}\`: ${describeSystemError(error)}`,
      {
        cause: error,
      },
    );
  }
}

/**
 * Reads single lines of a phase file back by offset, so the dispatcher need not hold the
 * commands of a million tasks in flight.
 */
export class SpoolReader {
  private fd: number | undefined;

  constructor(private readonly path: string) {}

  command(offset: number, length: number): string {
    return this.line(offset, length)[1];
  }

  /** The line at `offset`: `[id, command]`. */
  line(offset: number, length: number): readonly [string, string] {
    this.fd ??= openSync(this.path, 'r');
    const buffer = Buffer.alloc(length);
    readSync(this.fd, buffer, 0, length, offset);
    return JSON.parse(buffer.toString('utf8')) as [string, string];
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
