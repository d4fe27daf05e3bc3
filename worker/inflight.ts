import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
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
  /** The worker process that wrote it: its random instance id and its pid. */
  readonly instance?: string;
  readonly pid?: number;
}

/**
 * In-flight markers in a directory that outlives the worker's container (an emptyDir in
 * Kubernetes). When the kernel kills a container together with its task (out of memory, with
 * `memory.oom.group`), nothing reports the attempt; the next start of the worker finds its
 * marker and does.
 */
export class InflightMarkers {
  /** This process's markers are never leftovers, however often the worker reconnects. */
  private readonly instance = randomUUID();

  constructor(private readonly dir: string | undefined) {
    if (dir) makeDirs(dir);
  }

  write(marker: InflightMarker): string | undefined {
    if (!this.dir) return undefined;
    const path = join(this.dir, `${marker.task}.${marker.attempt}.json`);
    writeFileSync(path, JSON.stringify({ ...marker, instance: this.instance, pid: process.pid }));
    return path;
  }

  remove(path: string | undefined): void {
    if (path) rmSync(path, { force: true });
  }

  /**
   * Markers a previous life of this worker left behind, with their files: not this process's
   * own (its tasks are running), nor those of another live worker on this host that was
   * given the same directory by mistake.
   */
  leftovers(): { marker: InflightMarker; path: string }[] {
    if (!this.dir) return [];
    const found: { marker: InflightMarker; path: string }[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith('.json')) continue;
      const path = join(this.dir, name);
      let marker: InflightMarker;
      try {
        marker = JSON.parse(readFileSync(path, 'utf8')) as InflightMarker;
      } catch {
        rmSync(path, { force: true }); // torn by the crash itself: nothing to report
        continue;
      }
      if (marker.instance === this.instance || this.livesElsewhere(marker)) continue;
      found.push({ marker, path });
    }
    return found;
  }

  private livesElsewhere(marker: InflightMarker): boolean {
    if (marker.pid === undefined || marker.pid === process.pid || marker.host !== hostname())
      return false;
    try {
      process.kill(marker.pid, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
}
