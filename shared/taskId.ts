import * as crypto from 'node:crypto';
import { IdMap } from './idMap.js';

// crypto.hash (Node 20.12+) returns the hex string directly: no Hash object and no Buffer per
// line, which matters when a jobs file has a million of them.
const sha256hex: (text: string) => string =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'hex')
    : (text) => crypto.createHash('sha256').update(text).digest('hex');

function digest16(text: string): string {
  return sha256hex(text).slice(0, 16);
}

/**
 * The id of a task: a content hash of its run, phase and command, and, for the second and
 * later copies of the same line in a phase, its occurrence number. Stable across restarts, so
 * a resumed run recognises the tasks it already finished.
 */
export function taskId(run: string, phase: string, command: string, occurrence = 0): string {
  const base = digest16(`${run}\0${phase}\0${command}`);
  return occurrence === 0 ? base : digest16(`${base}\0${occurrence}`);
}

/**
 * The key of a command by its content alone (the command text after templating, whatever its run
 * or phase): the same command in another run has the same key, so its durations there say how
 * long it will take here (tasker/history).
 */
export function commandKey(command: string): string {
  return digest16(command);
}

/**
 * Numbers repeated lines without keeping the lines: a count per 64-bit hash in an IdMap, so a
 * million-line jobs file costs ~16 MB here instead of the ~100 MB of a Map of strings.
 */
export class OccurrenceCounter {
  private readonly seen = new IdMap(1, 4096);

  /** Returns how many times `hex16` was seen before, and counts this one. */
  next(hex16: string): number {
    const slot = this.seen.upsert(hex16);
    const before = this.seen.get(slot, 0);
    this.seen.set(slot, 0, before + 1);
    return before;
  }
}
