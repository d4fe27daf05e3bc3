import type { LedgerVisitor } from '../ledger/index.js';

/** One attempt on the report's timeline. */
export interface Bar {
  readonly task: string;
  readonly phase: string;
  readonly command: string;
  readonly attempt: number;
  readonly worker: string;
  readonly state: 'succeeded' | 'failed' | 'cancelled' | 'running';
  readonly start: number;
  readonly end: number;
  readonly reason: string | null;
}

/** When a phase first started. */
export interface PhaseStart {
  readonly phase: string;
  readonly at: number;
}

/**
 * Every attempt of a run and when each phase started, folded from its ledger by a replay
 * through `visitor`; attempts with a start and no end yet are running until `now`.
 */
export class AttemptsFold {
  private readonly started = new Map<string, { phase: string; worker: string; at: number }>();
  private readonly commands = new Map<string, string>();
  private readonly ended: Bar[] = [];
  readonly phaseStarts: PhaseStart[] = [];

  readonly visitor: LedgerVisitor = {
    phase: (record) => {
      if (!this.phaseStarts.some((p) => p.phase === record.phase))
        this.phaseStarts.push({ phase: record.phase, at: Date.parse(record.at) });
    },
    start: (record) => {
      this.started.set(`${record.task}.${record.attempt}`, {
        phase: record.phase,
        worker: record.worker,
        at: Date.parse(record.at),
      });
    },
    end: (record) => {
      this.started.delete(`${record.task}.${record.attempt}`);
      if (record.command) this.commands.set(record.task, record.command);
      this.ended.push({
        task: record.task,
        phase: record.phase,
        command: record.command,
        attempt: record.attempt,
        worker: record.worker || '(broker)',
        state: record.state,
        start: Date.parse(record.startedAt),
        end: Date.parse(record.finishedAt),
        reason: record.reason,
      });
    },
  };

  /** The attempts that ended, in ledger order, then those still running at `now`. */
  bars(now: number): Bar[] {
    const bars = [...this.ended];
    for (const [key, open] of this.started) {
      const [task, attempt] = key.split('.') as [string, string];
      bars.push({
        task,
        phase: open.phase,
        command: this.commands.get(task) ?? '',
        attempt: Number(attempt),
        worker: open.worker,
        state: 'running',
        start: open.at,
        end: now,
        reason: null,
      });
    }
    return bars;
  }
}
