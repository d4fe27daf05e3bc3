import { isUtf8 } from 'node:buffer';
import { InputError } from '../../shared/errors.js';
import { MAX_LINE, openJobs, unreadable } from './jobsFile.js';

/** One line of a text file as Python's text mode reads it. */
export interface TextLine {
  /** 1-based, counting every line (blank lines and comments too). */
  readonly number: number;
  /** The line without its line break. */
  readonly text: string;
  /** `\n` for a line that had a line break (LF, CRLF or a lone CR), `''` for a last line without one. */
  readonly ending: '\n' | '';
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Reads a file line by line as Python's `open(path, 'r', encoding='utf-8')` does: universal
 * newlines (`\n`, `\r\n` and a lone `\r` all end a line and read as `\n`), a last line without
 * a line break kept as it is, strict UTF-8 (invalid bytes are an error, as Python's
 * UnicodeDecodeError), a byte-order mark kept as a character. Lines are cut on bytes, which is
 * safe in UTF-8 (CR and LF never occur inside a multi-byte character), and each is decoded on
 * its own, so an error names its line. Streams: one line in memory at a time.
 */
export async function* readTextLines(path: string): AsyncGenerator<TextLine> {
  const handle = await openJobs(path);
  let number = 0;
  let held: Buffer[] = [];
  let heldBytes = 0;
  // A CR ended the last chunk: an LF starting the next one belongs to it.
  let afterCr = false;
  const line = (bytes: Buffer, ending: '\n' | ''): TextLine => {
    number++;
    if (bytes.length > MAX_LINE) {
      throw new InputError('LINE_TOO_LONG', `line ${number} of \`${path}\` is longer than 1 MiB`);
    }
    // isUtf8 refuses what Python's codec refuses (overlongs, surrogates, past U+10FFFF), and
    // toString keeps a byte-order mark, as Python's `utf-8` (not `utf-8-sig`) does.
    if (!isUtf8(bytes)) {
      throw new InputError('JOBS_NOT_UTF8', `line ${number} of \`${path}\` is not valid UTF-8`);
    }
    return { number, text: bytes.toString('utf8'), ending };
  };
  const take = (chunk: Buffer, start: number, end: number): Buffer => {
    const tail = chunk.subarray(start, end);
    const bytes = held.length === 0 ? tail : Buffer.concat([...held, tail]);
    held = [];
    heldBytes = 0;
    return bytes;
  };
  try {
    for await (const chunk of handle.createReadStream() as AsyncIterable<Buffer>) {
      if (chunk.length === 0) continue;
      let start = afterCr && chunk[0] === LF ? 1 : 0;
      afterCr = false;
      // indexOf finds the breaks at native speed; a file without CRs looks for none after one miss.
      let lf = chunk.indexOf(LF, start);
      let cr = chunk.indexOf(CR, start);
      while (lf !== -1 || cr !== -1) {
        const at = cr === -1 || (lf !== -1 && lf < cr) ? lf : cr;
        yield line(take(chunk, start, at), '\n');
        start = at + 1;
        if (at === cr) {
          if (start === chunk.length) afterCr = true;
          else if (chunk[start] === LF) start++;
        }
        if (lf !== -1 && lf < start) lf = chunk.indexOf(LF, start);
        if (cr !== -1 && cr < start) cr = chunk.indexOf(CR, start);
      }
      if (start < chunk.length) {
        held.push(chunk.subarray(start));
        heldBytes += chunk.length - start;
        if (heldBytes > MAX_LINE) {
          throw new InputError(
            'LINE_TOO_LONG',
            `line ${number + 1} of \`${path}\` is longer than 1 MiB`,
          );
        }
      }
    }
    if (heldBytes > 0) yield line(take(Buffer.alloc(0), 0, 0), '');
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw unreadable(path, error);
  } finally {
    await handle.close().catch(() => {});
  }
}
