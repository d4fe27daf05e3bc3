import { formatDuration } from '../../shared/duration.js';
import { AttemptsFold, type Bar, type PhaseStart } from './attempts.js';
import { phaseCells, phaseColumns } from './formatStatus.js';
import { type RunStatus, runStatus } from './status.js';

/** The timeline draws at most this many attempts (the longest), so the file stays usable. */
export const MAX_BARS = 20_000;

const esc = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const iso = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
const short = (text: string, max = 90) =>
  text.length > max ? `${text.slice(0, max - 3)}...` : text;

/** Commands for bars that ended with no command recorded (collected from another phase). */
function withCommands(bars: Bar[], status: RunStatus): Bar[] {
  const byId = new Map(status.tasks.map((task) => [task.id, task.command]));
  return bars.map((bar) => (bar.command ? bar : { ...bar, command: byId.get(bar.task) ?? '' }));
}

const COLOURS = {
  succeeded: '#2e9e5b',
  failed: '#d64545',
  cancelled: '#9a9a9a',
  running: '#3b7dd8',
} as const;

/** Label rows above the timeline: 11px monospace, about 7px a character. */
const LABEL = { charWidth: 7, gap: 8, lane: 13, first: 10 } as const;

/**
 * Puts each phase label in the first row where it clears the labels before it, so that the
 * labels of short phases, whose starts are close, never overlap: a label that would run past
 * the right edge ends at its line instead of starting there.
 */
export function labelLanes(
  labels: readonly { readonly x: number; readonly text: string }[],
  right: number,
): { x: number; anchor: 'start' | 'end'; lane: number }[] {
  const ends: number[] = [];
  return labels.map(({ x, text }) => {
    const width = text.length * LABEL.charWidth;
    const anchor = x + width > right ? 'end' : 'start';
    const from = anchor === 'start' ? x : x - width;
    let lane = ends.findIndex((end) => end + LABEL.gap <= from);
    if (lane < 0) lane = ends.length;
    ends[lane] = from + width;
    return { x, anchor, lane };
  });
}

function timeline(bars: Bar[], phaseStarts: readonly PhaseStart[]): string {
  if (bars.length === 0) return '<p class="empty">No attempt has started yet.</p>';
  const drawn =
    bars.length > MAX_BARS
      ? [...bars].sort((a, b) => b.end - b.start - (a.end - a.start)).slice(0, MAX_BARS)
      : bars;
  const slots = [...new Set(drawn.map((bar) => bar.worker))].sort((a, b) =>
    a.localeCompare(b, 'en', { numeric: true }),
  );
  const t0 = Math.min(...drawn.map((bar) => bar.start), ...phaseStarts.map((p) => p.at));
  const t1 = Math.max(...drawn.map((bar) => bar.end), t0 + 1);
  const left = 170;
  const width = 1100;
  const row = 16;
  const x = (t: number) => left + ((t - t0) / (t1 - t0)) * width;
  const starts = [...phaseStarts].sort((a, b) => a.at - b.at);
  const names = starts.map((phase) => short(phase.phase, 24));
  const lanes = labelLanes(
    starts.map((phase, i) => ({ x: x(phase.at), text: names[i] ?? '' })),
    left + width + 20,
  );
  const laneCount = Math.max(1, ...lanes.map((label) => label.lane + 1));
  const top = 24 + (laneCount - 1) * LABEL.lane;
  const height = top + slots.length * row + 24;
  const parts: string[] = [];
  parts.push(
    `<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="${left + width + 20}" height="${height}" role="img" aria-label="timeline of every attempt per worker slot">`,
  );
  slots.forEach((slot, i) => {
    const y = top + i * row;
    if (i % 2 === 0)
      parts.push(`<rect x="0" y="${y}" width="${left + width}" height="${row}" fill="#f4f4f4"/>`);
    parts.push(
      `<text x="${left - 6}" y="${y + row - 4}" text-anchor="end" class="slot">${esc(short(slot, 26))}</text>`,
    );
  });
  const slotIndex = new Map(slots.map((slot, i) => [slot, i]));
  for (const bar of drawn) {
    const y = top + (slotIndex.get(bar.worker) ?? 0) * row + 2;
    const x0 = x(bar.start);
    const w = Math.max(x(bar.end) - x0, 1.5);
    const title = `${bar.command}\n${bar.state}${bar.reason ? ` (${bar.reason})` : ''}, attempt ${bar.attempt}, ${bar.phase}\n${bar.worker}: ${iso(bar.start)} to ${iso(bar.end)} UTC, ${formatDuration(bar.end - bar.start)}\ntask ${bar.task}`;
    parts.push(
      `<rect class="task ${bar.state}" x="${x0.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${row - 4}" fill="${COLOURS[bar.state]}" data-task="${bar.task}"><title>${esc(title)}</title></rect>`,
    );
  }
  starts.forEach((phase, i) => {
    const label = lanes[i] ?? { x: x(phase.at), anchor: 'start', lane: 0 };
    const px = label.x.toFixed(1);
    const y = LABEL.first + label.lane * LABEL.lane;
    parts.push(
      `<line class="phase" x1="${px}" x2="${px}" y1="${y + 2}" y2="${height - 18}" stroke="#333" stroke-dasharray="4 3"/>`,
      `<text x="${px}" y="${y}" text-anchor="${label.anchor}" class="phase-label">${esc(names[i] ?? '')}<title>phase ${esc(phase.phase)} started ${iso(phase.at)} UTC</title></text>`,
    );
  });
  parts.push(
    `<text x="${left}" y="${height - 4}" class="axis">${iso(t0)} UTC</text>`,
    `<text x="${left + width}" y="${height - 4}" text-anchor="end" class="axis">${iso(t1)} UTC (${formatDuration(t1 - t0)})</text>`,
    '</svg>',
  );
  const note =
    drawn.length < bars.length
      ? `<p class="note">The ${MAX_BARS} longest of ${bars.length} attempts are drawn.</p>`
      : '';
  return parts.join('\n') + note;
}

function histogram(phase: string, durations: number[]): string {
  const bins = 20;
  const max = Math.max(...durations, 1);
  const counts = new Array<number>(bins).fill(0);
  for (const d of durations) {
    const bin = Math.min(bins - 1, Math.floor((d / max) * bins));
    counts[bin] = (counts[bin] ?? 0) + 1;
  }
  const top = Math.max(...counts, 1);
  const w = 14;
  const h = 70;
  const bars = counts
    .map((count, i) => {
      const bh = (count / top) * h;
      const from = formatDuration(Math.round((i * max) / bins));
      const to = formatDuration(Math.round(((i + 1) * max) / bins));
      return `<rect class="bin" x="${i * w}" y="${(h - bh).toFixed(1)}" width="${w - 2}" height="${bh.toFixed(1)}" fill="#5b7fb5"><title>${count} task(s) from ${from} to ${to}</title></rect>`;
    })
    .join('');
  return `<figure><figcaption>${esc(phase)}: ${durations.length} attempts, longest ${formatDuration(max)}</figcaption><svg class="histogram" xmlns="http://www.w3.org/2000/svg" width="${bins * w}" height="${h + 14}">${bars}<text x="0" y="${h + 12}" class="axis">0</text><text x="${bins * w}" y="${h + 12}" text-anchor="end" class="axis">${formatDuration(max)}</text></svg></figure>`;
}

function table(head: string[], rows: string[][], cls: string): string {
  if (rows.length === 0) return `<p class="empty">None.</p>`;
  return `<table class="${cls}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((row) => `<tr>${row.map((cell) => `<td>${cell}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

/**
 * `tasker report`: one self-contained HTML file (no scripts or files from anywhere else) about a
 * run: a timeline of every attempt per worker slot with phase boundaries, durations per phase,
 * the slowest tasks, the failures and how busy each slot was. `refreshSeconds` makes the page
 * reload itself (the live view of `tasker run --http`).
 */
export async function buildReport(
  stateDir: string,
  run: string,
  options: { refreshSeconds?: number } = {},
): Promise<string> {
  const now = Date.now();
  const attempts = new AttemptsFold();
  const status = await runStatus(stateDir, run, [attempts.visitor]);
  const { phaseStarts } = attempts;
  const bars = withCommands(attempts.bars(now), status);
  const ended = bars.filter((bar) => bar.state !== 'running');
  const span =
    bars.length === 0
      ? 0
      : Math.max(...bars.map((b) => b.end)) - Math.min(...bars.map((b) => b.start));
  const counts = status.phases.reduce(
    (sum, p) => ({
      total: sum.total + p.total,
      succeeded: sum.succeeded + p.succeeded,
      failed: sum.failed + p.failed,
      running: sum.running + p.running,
    }),
    { total: 0, succeeded: 0, failed: 0, running: 0 },
  );

  const withCancelled = status.phases.some((phase) => phase.cancelled > 0);
  const phases = table(
    phaseColumns(status.phases),
    status.phases.map((phase) => phaseCells(phase, withCancelled).map(esc)),
    'phases',
  );
  const byPhase = new Map<string, number[]>();
  for (const bar of ended) {
    const list = byPhase.get(bar.phase) ?? [];
    list.push(bar.end - bar.start);
    byPhase.set(bar.phase, list);
  }
  const histograms = [...byPhase].map(([phase, durations]) => histogram(phase, durations)).join('');
  const slowest = table(
    ['duration', 'phase', 'worker', 'state', 'command'],
    [...ended]
      .sort((a, b) => b.end - b.start - (a.end - a.start))
      .slice(0, 15)
      .map((bar) => [
        formatDuration(bar.end - bar.start),
        esc(bar.phase),
        esc(bar.worker),
        bar.state,
        `<code>${esc(short(bar.command, 120))}</code>`,
      ]),
    'slowest',
  );
  const failures = table(
    ['task', 'phase', 'class', 'reason', 'exit', 'attempts', 'command', 'stderr (end)'],
    status.tasks
      .filter((task) => task.state === 'failed')
      .slice(0, 500)
      .map((task) => [
        `<code>${task.id}</code>`,
        esc(task.phase),
        esc(task.failure ?? ''),
        esc(task.reason ?? ''),
        task.exitCode === null ? '' : String(task.exitCode),
        String(task.attempts),
        `<code>${esc(short(task.command, 100))}</code>`,
        `<pre>${esc(task.errorTail.split('\n').slice(-6).join('\n'))}</pre>`,
      ]),
    'failures',
  );
  const busy = new Map<string, number>();
  for (const bar of bars) busy.set(bar.worker, (busy.get(bar.worker) ?? 0) + (bar.end - bar.start));
  const utilisation = table(
    ['worker slot', 'attempts', 'busy', 'share of the run'],
    [...busy]
      .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
      .map(([slot, ms]) => {
        const share = span > 0 ? Math.min(1, ms / span) : 0;
        return [
          esc(slot),
          String(bars.filter((bar) => bar.worker === slot).length),
          formatDuration(ms),
          `<span class="meter"><span style="width:${(share * 100).toFixed(1)}%"></span></span> ${(share * 100).toFixed(0)}%`,
        ];
      }),
    'utilisation',
  );
  const refresh = options.refreshSeconds
    ? `<meta http-equiv="refresh" content="${options.refreshSeconds}">`
    : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
${refresh}
<title>Warren run ${esc(run)}: ${status.state}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .4em 0; } td, th { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
th { background: #eee; } code, pre { font: 12px ui-monospace, monospace; } pre { margin: 0; white-space: pre-wrap; max-width: 40em; }
.slot, .axis, .phase-label { font: 11px ui-monospace, monospace; fill: #444; }
.legend span { display: inline-block; padding: 0 .6em; margin-right: .4em; color: #fff; border-radius: 3px; }
figure { display: inline-block; margin: 0 1.5em 1em 0; } figcaption { font-size: 12px; }
.meter { display: inline-block; width: 120px; height: 10px; background: #eee; vertical-align: middle; }
.meter span { display: block; height: 100%; background: #5b7fb5; }
.empty, .note { color: #666; }
#timeline-box { overflow-x: auto; }
</style>
</head>
<body>
<h1>Warren run <code>${esc(run)}</code>: ${status.state}</h1>
<p>${esc(status.mode ?? 'unknown')} mode; started ${status.startedAt ? `${iso(Date.parse(status.startedAt))} UTC` : '-'}; ${counts.total} tasks: ${counts.succeeded} succeeded, ${counts.failed} failed, ${counts.running} running; ${bars.length} attempts over ${formatDuration(span)}. Report made ${iso(now)} UTC.</p>
${phases}
<h2>Timeline</h2>
<p class="legend"><span style="background:${COLOURS.succeeded}">succeeded</span><span style="background:${COLOURS.failed}">failed</span><span style="background:${COLOURS.cancelled}">cancelled</span><span style="background:${COLOURS.running}">running</span> one row per worker slot; dashed lines are phase starts; hover a bar for its command and times.</p>
<div id="timeline-box">${timeline(bars, phaseStarts)}</div>
<h2>Durations per phase</h2>
${histograms || '<p class="empty">No attempt has ended yet.</p>'}
<h2>Slowest tasks</h2>
${slowest}
<h2>Failures</h2>
${failures}
<h2>Worker slots</h2>
${utilisation}
</body>
</html>
`;
}
