import { readSync } from 'node:fs';

/**
 * The last `maxBytes` of the byte range [start, end) of an open file, as text, starting at a
 * line boundary when the cut falls inside a line.
 */
export function readTail(fd: number, start: number, end: number, maxBytes: number): string {
  const length = Math.min(end - start, maxBytes);
  if (length <= 0) return '';
  const buffer = Buffer.alloc(length);
  const read = readSync(fd, buffer, 0, length, end - length);
  const text = buffer.toString('utf8', 0, read);
  if (length === end - start) return text;
  const newline = text.indexOf('\n');
  return newline >= 0 && newline < text.length - 1 ? text.slice(newline + 1) : text;
}
