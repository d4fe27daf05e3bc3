import type { Logger } from '../../shared/logger.js';
import type { PhasePlan } from '../jobs/index.js';
import type { LedgerWriter, RunMemory } from '../ledger/index.js';
import type { Transport } from '../transports/index.js';
import type { DispatchOptions } from './dispatchOptions.js';
import { type PhaseContext, PhaseRun } from './phaseRun.js';
import type { PhaseProgress, PhaseSummary } from './phaseTally.js';
import { RetryPolicy } from './retryPolicy.js';
import { SpawnBook } from './spawns.js';

/**
 * Runs phases through a transport: publishes each phase's tasks, retries failures with
 * backoff, records every attempt in the ledger, and returns only when every task of the phase
 * has a final outcome (the barrier counts distinct task ids, never queue lengths).
 */
export class Dispatcher {
  private interrupted = false;
  private current: PhaseRun | undefined;
  /** What every phase of the run shares. */
  private readonly shared: Omit<PhaseContext, 'phase' | 'transport'>;

  constructor(
    private readonly ledger: LedgerWriter,
    memory: RunMemory,
    options: DispatchOptions,
    log: Logger,
    onProgress: (progress: PhaseProgress) => void = () => {},
  ) {
    this.shared = {
      ledger,
      memory,
      options,
      log,
      onProgress,
      policy: new RetryPolicy(options),
      spawns: new SpawnBook(options.run, options.maxTasks, options.plannedTasks ?? 0, memory),
    };
  }

  /**
   * Stops the run: nothing more is submitted, running tasks are stopped (local) or left to
   * their workers (broker), and the current phase returns. What did not finish runs again when
   * the run is resumed.
   */
  async interrupt(): Promise<void> {
    this.interrupted = true;
    await this.current?.interrupt();
  }

  async runPhase(phase: PhasePlan, transport: Transport): Promise<PhaseSummary> {
    this.ledger.append({
      type: 'phase',
      at: new Date().toISOString(),
      phase: phase.name,
      kind: phase.kind,
      total: phase.total,
    });
    const run = new PhaseRun({ ...this.shared, phase, transport });
    this.current = run;
    if (this.interrupted) await run.interrupt();
    try {
      const summary = await run.execute();
      this.ledger.append({
        type: 'phase-end',
        at: new Date().toISOString(),
        phase: phase.name,
        succeeded: summary.succeeded + summary.skipped,
        failed: summary.failed,
        interrupted: summary.interrupted,
      });
      this.ledger.sync();
      return summary;
    } finally {
      this.current = undefined;
      run.close();
    }
  }
}
