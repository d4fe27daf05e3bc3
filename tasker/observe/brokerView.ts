import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { PhaseProgress } from '../dispatch/index.js';
import type { QueueView } from '../transports/index.js';

/** What a running tasker last heard of its task queue, as `tasker status` reads it. */
export interface BrokerViewRecord extends QueueView {
  /** When the tasker asked, ISO 8601. */
  readonly at: string;
  /** The phase it was waiting in. */
  readonly phase: string;
  /** What the phase waits for, when worth saying: `no worker is consuming warren.tasks: ...`. */
  readonly note: string | null;
}

/**
 * The broker's view of the task queue, kept in the run's directory by its tasker (written when
 * the view changes, removed when the tasker ends), so `tasker status` can show the broker's
 * counts beside the ledger's without a connection of its own.
 */
export class BrokerViewFile {
  private last: QueueView | undefined;

  constructor(private readonly path: string) {}

  update(progress: PhaseProgress): void {
    const view = progress.broker;
    if (!view || view === this.last) return;
    this.last = view;
    const record: BrokerViewRecord = {
      ...view,
      at: new Date().toISOString(),
      phase: progress.phase,
      note: progress.note ?? null,
    };
    try {
      writeFileSync(`${this.path}.tmp`, `${JSON.stringify(record)}\n`);
      renameSync(`${this.path}.tmp`, this.path);
    } catch {
      // status goes without it
    }
  }

  remove(): void {
    rmSync(this.path, { force: true });
  }
}

/** The last view a running tasker wrote, if any. */
export function readBrokerView(path: string): BrokerViewRecord | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as BrokerViewRecord;
  } catch {
    return undefined;
  }
}
