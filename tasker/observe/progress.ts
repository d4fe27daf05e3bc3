import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { formatDuration } from '../../shared/duration.js';
import { terminal } from '../../shared/logger.js';
import type { PhaseProgress } from '../dispatch/index.js';

/**
 * One line per phase on a terminal: done/total, failures, running tasks and an ETA, drawn by
 * cli-progress. Log lines print above the bars while it runs.
 */
export class Progress {
  private readonly bars = new MultiBar(
    {
      format:
        '{phase} |{bar}| {value}/{total} done, {failed} failed, {running} running | ETA {left}{note}',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      fps: 5,
      stream: process.stderr,
    },
    Presets.shades_classic,
  );
  private readonly phases = new Map<string, SingleBar>();
  private readonly started = new Map<string, { at: number; done: number }>();
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
      left: this.eta(progress),
      // What the phase waits for, shortened: the warning line says the rest.
      note: progress.note ? ` | ${progress.note.split(':')[0]}` : '',
    };
    if (!bar) {
      bar = this.bars.create(progress.total, progress.done, payload);
      this.phases.set(progress.phase, bar);
    }
    bar.setTotal(progress.total);
    bar.update(progress.done, payload);
  }

  /**
   * Time left: from the durations the phase's tasks took in earlier runs when the tasker has
   * them (docs/observing.md), else at the pace since this tasker first saw the phase (`-` until
   * a task ends).
   */
  private eta(progress: PhaseProgress): string {
    if (progress.etaMs !== undefined && progress.done < progress.total)
      return formatDuration(progress.etaMs);
    const start = this.started.get(progress.phase);
    if (!start) {
      this.started.set(progress.phase, { at: Date.now(), done: progress.done });
      return '-';
    }
    const done = progress.done - start.done;
    if (progress.done >= progress.total) return '0s';
    if (done <= 0) return '-';
    const perTask = (Date.now() - start.at) / done;
    return formatDuration(Math.round(perTask * (progress.total - progress.done)));
  }

  stop(): void {
    this.bars.stop();
    terminal.divert = undefined;
  }
}
