import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirs } from '../shared/dirs.js';

/** What a worker writes down before it runs a task, and removes once the task is acknowledged. */
export interface InflightMarker {
  readonly run: string;
  readonly phase: string;
  readonly task: string;
  readonly attempt: number;
  readonly replyTo: string;
  readonly worker: string;
  readonly host: string;
  readonly startedAt: string;
}

/**
 * In-flight markers in a directory that outlives the worker's container (an emptyDir in
 * Kubernetes). When the kernel kills a container together with its task (out of memory, with
 * `memory.oom.group`), nothing reports the attempt; the next start of the worker finds its
 * marker and does.
 */
export class InflightMarkers {
  constructor(private readonly dir: string | undefined) {
    if (dir) makeDirs(dir);
  }

  write(marker: InflightMarker): string | undefined {
    if (!this.dir) return undefined;
    const path = join(this.dir, `${marker.task}.${marker.attempt}.json`);
    writeFileSync(path, JSON.stringify(marker));
    return path;
  }

  remove(path: string | undefined): void {
    if (path) rmSync(path, { force: true });
  }

  /** Markers a previous life of this worker left behind, with their files. */
  leftovers(): { marker: InflightMarker; path: string }[] {
    if (!this.dir) return [];
    const found: { marker: InflightMarker; path: string }[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith('.json')) continue;
      const path = join(this.dir, name);
      try {
        found.push({ marker: JSON.parse(readFileSync(path, 'utf8')) as InflightMarker, path });
      } catch {
        rmSync(path, { force: true }); // torn by the crash itself: nothing to report
      }
    }
    return found;
  }
}
