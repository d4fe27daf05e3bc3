import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { makeDirs } from '../../shared/dirs.js';
import { IdMap } from '../../shared/idMap.js';

/** `WRNH`, then the format version. */
const MAGIC = 0x484e5257;
const VERSION = 1;
/** Numbers per entry: the key's two halves, the duration in ms, when it ended (s). */
const ENTRY = 4;

/**
 * The saved duration index: `[magic, version, header bytes]`, a JSON header (how far each run's
 * ledger was read) padded to 4 bytes, the entry count, then 4 uint32 per command (the machine's byte order: little-endian on x86 and ARM).
 * Binary, because a million commands read back in milliseconds this way.
 */
export function writeDurationCache(
  path: string,
  index: IdMap,
  ledgers: ReadonlyMap<string, number>,
): void {
  const header = Buffer.from(JSON.stringify({ ledgers: Object.fromEntries(ledgers) }));
  const headerWords = Math.ceil(header.length / 4);
  const slots = index.slotsWhere(0, 0, 0); // every slot in use
  const words = new Uint32Array(3 + headerWords + 1 + slots.length * ENTRY);
  words[0] = MAGIC;
  words[1] = VERSION;
  words[2] = header.length;
  Buffer.from(words.buffer).set(header, 12);
  let at = 3 + headerWords;
  words[at++] = slots.length;
  for (const slot of slots) {
    const [hi, lo] = index.keyAt(slot);
    words[at++] = hi;
    words[at++] = lo;
    words[at++] = index.get(slot, 0);
    words[at++] = index.get(slot, 1);
  }
  makeDirs(dirname(path));
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, Buffer.from(words.buffer));
  // Two taskers of the same state dir may save at once: each file is whole, the last one stays.
  renameSync(temporary, path);
}

/** The saved index, or undefined when there is none or it cannot be read (it is built again). */
export function readDurationCache(
  path: string,
): { index: IdMap; ledgers: Map<string, number> } | undefined {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    return undefined;
  }
  if (bytes.length < 16 || bytes.length % 4 !== 0) return undefined;
  // A view needs 4-byte alignment: a copy when the Buffer sits elsewhere in a shared pool.
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : new Uint8Array(bytes);
  const words = new Uint32Array(aligned.buffer, aligned.byteOffset, bytes.length / 4);
  if (words[0] !== MAGIC || words[1] !== VERSION) return undefined;
  const headerLength = words[2] ?? 0;
  const headerWords = Math.ceil(headerLength / 4);
  let ledgers: Map<string, number>;
  try {
    const header = JSON.parse(bytes.toString('utf8', 12, 12 + headerLength)) as {
      ledgers: Record<string, number>;
    };
    ledgers = new Map(Object.entries(header.ledgers));
  } catch {
    return undefined;
  }
  let at = 3 + headerWords;
  const count = words[at++] ?? 0;
  if (words.length !== at + count * ENTRY) return undefined;
  const index = new IdMap(2, Math.ceil((count * 4) / 3) + 16);
  for (let i = 0; i < count; i++, at += ENTRY) {
    const slot = index.upsertKey(words[at] ?? 0, words[at + 1] ?? 0);
    index.set(slot, 0, words[at + 2] ?? 0);
    index.set(slot, 1, words[at + 3] ?? 0);
  }
  return { index, ledgers };
}
