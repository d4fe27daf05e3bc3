import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { terminal } from '../shared/logger.js';
import type { PhaseProgress } from './dispatcher.js';

/**
 * One line per phase on a terminal: done/total, failures, running tasks and an ETA, drawn by
 * cli-progress. Log lines print above the bars while it runs.
 */
export class Progress {
  private readonly bars = new MultiBar(
    {
      format:
        '{phase} |{bar}| {value}/{total} done, {failed} failed, {running} running | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      etaBuffer: 50,
      fps: 5,
      stream: process.stderr,
    },
    Presets.shades_classic,
  );
  private readonly phases = new Map<string, SingleBar>();
  private readonly width: number;

  constructor(phaseNames: readonly string[]) {
    this.width = Math.max(...phaseNames.map((name) => name.length), 5);
    terminal.divert = (text) => this.bars.log(text.endsWith('\n') ? text : `${text}\n`);
  }

  update(progress: PhaseProgress): void {
    let bar = this.phases.get(progress.phase);
    const payload = {
      phase: progress.phase.padEnd(this.width),
      failed: progress.failed,
      running: progress.running,
    };
    if (!bar) {
      bar = this.bars.create(progress.total, progress.done, payload);
      this.phases.set(progress.phase, bar);
    }
    bar.setTotal(progress.total);
    bar.update(progress.done, payload);
  }

  stop(): void {
    this.bars.stop();
    terminal.divert = undefined;
  }
}
