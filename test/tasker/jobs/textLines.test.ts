import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_LINE } from '../../../tasker/jobs/jobsFile.js';
import { readTextLines, type TextLine } from '../../../tasker/jobs/textLines.js';
import { eachTempDir } from '../../helpers/cli.js';

let dir: string;
eachTempDir((made) => (dir = made));

/** The read stream's chunk size: line breaks and characters across it must read as one. */
const CHUNK = 64 * 1024;

async function read(content: string | Buffer): Promise<[string, string][]> {
  const path = join(dir, 'jobs.sh');
  writeFileSync(path, content);
  const lines: TextLine[] = [];
  for await (const line of readTextLines(path)) lines.push(line);
  expect(lines.map((line) => line.number)).toEqual(lines.map((_, index) => index + 1));
  return lines.map((line) => [line.text, line.ending]);
}

// What Python's text mode (universal newlines) makes of the same bytes: `open(p).readlines()`.
describe('readTextLines', () => {
  it('ends a line at LF, CRLF or a lone CR, and keeps a last line without a break', async () => {
    expect(await read('a\nb\r\nc\rd')).toEqual([
      ['a', '\n'],
      ['b', '\n'],
      ['c', '\n'],
      ['d', ''],
    ]);
    expect(await read('a\r\r\n\n')).toEqual([
      ['a', '\n'],
      ['', '\n'],
      ['', '\n'],
    ]);
    expect(await read('')).toEqual([]);
  });

  it('does not cut at \\v, \\f, U+0085 or U+2028, and keeps a byte-order mark', async () => {
    expect(await read('\ufeffa\vb\fc\u0085d\u2028e\n')).toEqual([
      ['\ufeffa\vb\fc\u0085d\u2028e', '\n'],
    ]);
  });

  it('reads a CRLF and a character cut by a chunk boundary as one', async () => {
    const before = 'x'.repeat(CHUNK - 1);
    expect(await read(`${before}\r\nnext\n`)).toEqual([
      [before, '\n'],
      ['next', '\n'],
    ]);
    expect(await read(`${before}\rnext`)).toEqual([
      [before, '\n'],
      ['next', ''],
    ]);
    expect(await read(`${before}\u00e9\n`)).toEqual([[`${before}\u00e9`, '\n']]);
  });

  it('refuses invalid UTF-8 and a line longer than 1 MiB, naming the line', async () => {
    await expect(read(Buffer.from([0x61, 0x0a, 0x62, 0xc3, 0x28, 0x0a]))).rejects.toThrow(
      /^line 2 of `.*jobs\.sh` is not valid UTF-8$/,
    );
    await expect(read(`ok\n${'x'.repeat(MAX_LINE + 1)}\n`)).rejects.toThrow(
      /^line 2 of `.*jobs\.sh` is longer than 1 MiB$/,
    );
    await expect(readTextLines(join(dir, 'nope.sh')).next()).rejects.toThrow(
      /^cannot read jobs file `.*nope\.sh`: no such file$/,
    );
  });
});
