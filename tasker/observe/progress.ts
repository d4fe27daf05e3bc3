import { formatDuration } from '../../shared/duration.js';
import { terminal } from '../../shared/logger.js';
import type { PhaseProgress } from '../dispatch/index.js';

const ESC = '\x1b[';
const BAR_WIDTH = 40;

/**
 * One line per phase at the bottom of a terminal: done/total, failures, running tasks and an
 * ETA. Every log line goes through it while it runs: the bars are erased, the line is written,
 * the bars are drawn again below it, all in one synchronous write, so each line reaches the
 * terminal whole and in order. `stop` erases the bars and gives the terminal back; the phase
 * ends are in the log lines themselves.
 *
 * Only for a terminal: each bar is cut to the terminal's width so that it takes one row, which
 * is what erasing them counts on.
 */
export class Progress {
  private readonly stream = process.stderr;
  private readonly lines = new Map<string, string>();
  private readonly started = new Map<string, { at: number; done: number }>();
  private readonly width: number;
  /** Rows of bars on the screen now, the cursor at the start of the row below them. */
  private drawn = 0;
  private state: 'drawing' | 'stopped' = 'drawing';
  private readonly showCursor = () => this.stream.write(`${ESC}?25h`);

  constructor(phaseNames: readonly string[]) {
    this.width = Math.max(...phaseNames.map((name) => name.length), 5);
    this.stream.write(`${ESC}?25l`);
    // A process that exits by a path that does not reach `stop` still gets its cursor back.
    process.once('exit', this.showCursor);
    terminal.divert = (text) => this.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  update(progress: PhaseProgress): void {
    if (this.state === 'stopped') return;
    const line = this.format(progress);
    if (this.lines.get(progress.phase) === line) return;
    this.lines.set(progress.phase, line);
    this.write('');
  }

  /** Erases the bars; writes `text` (whole lines) and the bars again below it, in one write. */
  private write(text: string): void {
    this.stream.write(this.erase() + text + this.draw());
  }

  private erase(): string {
    const rows = this.drawn;
    this.drawn = 0;
    return rows > 0 ? `\r${ESC}${rows}A${ESC}J` : '';
  }

  private draw(): string {
    const columns = (this.stream.columns || 80) - 1;
    const rows = [...this.lines.values()].map((line) => `${line.slice(0, columns)}\n`);
    this.drawn = rows.length;
    return rows.join('');
  }

  private format(progress: PhaseProgress): string {
    // What the phase waits for, shortened: the warning line says the rest.
    const note = progress.note ? ` | ${progress.note.split(':')[0]}` : '';
    const counts = `${progress.done}/${progress.total} done, ${progress.failed} failed, ${progress.running} running | ETA ${this.eta(progress)}${note}`;
    const name = progress.phase.padEnd(this.width);
    // The bar gives way first on a narrow terminal, down to a few cells; `draw` cuts the rest.
    const room = (this.stream.columns || 80) - 1 - name.length - counts.length - 4;
    const width = Math.max(5, Math.min(BAR_WIDTH, room));
    const filled =
      progress.total > 0
        ? Math.min(width, Math.round((progress.done / progress.total) * width))
        : width;
    return `${name} |${'\u2588'.repeat(filled)}${'\u2591'.repeat(width - filled)}| ${counts}`;
  }

  /**
   * Time left: from the durations the phase's tasks took in earlier runs when the tasker has
   * them (docs/observing.md), else at the pace since this tasker first saw the phase (`-` until
   * a task ends).
   */
  private eta(progress: PhaseProgress): string {
    if (progress.done >= progress.total) return '0s';
    if (progress.etaMs !== undefined && progress.done < progress.total)
      return formatDuration(progress.etaMs);
    const start = this.started.get(progress.phase);
    if (!start) {
      this.started.set(progress.phase, { at: Date.now(), done: progress.done });
      return '-';
    }
    const done = progress.done - start.done;
    if (done <= 0) return '-';
    const perTask = (Date.now() - start.at) / done;
    return formatDuration(Math.round(perTask * (progress.total - progress.done)));
  }

  /** Erases the bars and gives the terminal back to plain log lines. Safe to call twice. */
  stop(): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    terminal.divert = undefined;
    this.stream.write(this.erase());
    this.showCursor();
    process.removeListener('exit', this.showCursor);
  }
}
