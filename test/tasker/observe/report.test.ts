import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../helpers/broker.js';
import { eachTempDir, tasker } from '../../helpers/cli.js';
import { endsOf, ledgerOf } from '../../helpers/ledger.js';

const CHROMIUM = '/usr/bin/chromium';

let dir: string;
eachTempDir((made) => (dir = made), { leftovers: 'fail' });

const write = (name: string, text: string) => writeFileSync(join(dir, name), text);

/** Opens a page in headless Chromium; returns what the test looks at, and the console errors. */
async function inBrowser<T>(
  url: string,
  look: (page: import('playwright-core').Page) => Promise<T>,
) {
  expect(existsSync(CHROMIUM), `${CHROMIUM} (Debian's chromium; .ci/run installs it)`).toBe(true);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    // Nothing may come from the network: the report is one file.
    const requests: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    await page.goto(url);
    const seen = await look(page);
    return { seen, errors, requests };
  } finally {
    await browser.close();
  }
}

describe('tasker report', () => {
  it('writes one self-contained HTML file: a bar per attempt, phases, durations, failures, slots', async () => {
    write(
      'jobs.sh',
      [
        ...Array.from({ length: 6 }, (_, i) => `sleep 0.0${i}; echo ${i}`),
        'wait',
        "sh -c 'echo the input is missing >&2; exit 4'",
        'echo fine',
      ].join('\n'),
    );
    const run = await tasker(
      [
        'run',
        'jobs.sh',
        '--run-id',
        'rep-1',
        '-j',
        '2',
        '--retries',
        '1',
        '--retry-delay',
        '10ms',
        '--keep-going',
      ],
      { cwd: dir },
    );
    expect(run.exitCode).toBe(1);
    const made = await tasker(['report', '-o', 'report.html'], { cwd: dir });
    expect(made.exitCode).toBe(0);
    expect(made.stdout).toMatch(/^wrote report.html \(run rep-1, [\d.]+ kB\)$/);
    const attempts = endsOf(ledgerOf(join(dir, '.warren'), 'rep-1'));
    expect(attempts).toHaveLength(9); // 6 + 2 attempts of the failing task + 1
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html).not.toMatch(/(src|href)=["']?https?:|@import|url\(/);

    const { seen, errors, requests } = await inBrowser(
      `file://${join(dir, 'report.html')}`,
      async (page) => ({
        title: await page.title(),
        bars: await page.locator('#timeline rect.task').count(),
        failedBars: await page.locator('#timeline rect.task.failed').count(),
        phaseLines: await page.locator('#timeline line.phase').count(),
        histograms: await page.locator('svg.histogram').count(),
        failureRows: await page.locator('table.failures tbody tr').count(),
        failure: await page.locator('table.failures tbody tr').first().innerText(),
        slots: await page.locator('table.utilisation tbody tr').count(),
        hover: await page.locator('#timeline rect.task.failed title').first().textContent(),
        timelineWidth: (await page.locator('#timeline').boundingBox())?.width ?? 0,
      }),
    );
    expect(errors).toEqual([]);
    expect(requests.filter((url) => !url.startsWith('file://'))).toEqual([]);
    expect(seen.title).toBe('Warren run rep-1: failed');
    expect(seen.bars).toBe(9);
    expect(seen.failedBars).toBe(2);
    expect(seen.phaseLines).toBe(2);
    expect(seen.histograms).toBe(2);
    expect(seen.failureRows).toBe(1);
    expect(seen.failure).toMatch(/exit\s+exit 4\s+4\s+2\s+sh -c/);
    expect(seen.failure).toContain('the input is missing');
    expect(seen.slots).toBe(2);
    expect(seen.hover).toMatch(
      /^sh -c 'echo the input is missing >&2; exit 4'\nfailed \(exit 4\), attempt \d, phase2\nlocal-\d: /,
    );
    expect(seen.timelineWidth).toBeGreaterThan(1000);
  });

  it('keeps the labels of phases that start close together apart, all inside the timeline', async () => {
    // Two very short phases between two long ones: four starts, three of them nearly at once.
    write('jobs.sh', ['sleep 1', 'wait', 'true', 'wait', 'true', 'wait', 'sleep 1'].join('\n'));
    expect((await tasker(['run', 'jobs.sh', '--run-id', 'lanes-1'], { cwd: dir })).exitCode).toBe(
      0,
    );
    expect((await tasker(['report', '-o', 'report.html'], { cwd: dir })).exitCode).toBe(0);
    const { seen, errors } = await inBrowser(
      `file://${join(dir, 'report.html')}`,
      async (page) => ({
        labels: await page.locator('#timeline text.phase-label').evaluateAll((nodes) =>
          nodes.map((node) => {
            const box = node.getBoundingClientRect();
            const { left, right, top, bottom, width } = box;
            return {
              text: node.firstChild?.textContent ?? '',
              box: { left, right, top, bottom, width },
            };
          }),
        ),
        lines: await page.locator('#timeline line.phase').count(),
        timeline: (await page.locator('#timeline').boundingBox()) ?? {
          x: 0,
          y: 0,
          width: 0,
          height: 0,
        },
        firstBar: (await page.locator('#timeline rect.task').first().boundingBox())?.y ?? 0,
      }),
    );
    expect(errors).toEqual([]);
    expect(seen.lines).toBe(4);
    expect(seen.labels.map((label) => label.text)).toEqual([
      'phase1',
      'phase2',
      'phase3',
      'phase4',
    ]);
    type Box = { left: number; right: number; top: number; bottom: number };
    const overlaps = (a: Box, b: Box) =>
      a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
    for (const [i, a] of seen.labels.entries()) {
      expect(a.box.width, a.text).toBeGreaterThan(0);
      // Inside the drawing, and above the first slot's bars.
      expect(a.box.left).toBeGreaterThanOrEqual(seen.timeline.x);
      expect(a.box.right).toBeLessThanOrEqual(seen.timeline.x + seen.timeline.width);
      expect(a.box.top).toBeGreaterThanOrEqual(seen.timeline.y);
      expect(a.box.bottom).toBeLessThanOrEqual(seen.firstBar);
      for (const b of seen.labels.slice(i + 1))
        expect(overlaps(a.box, b.box), `${a.text} and ${b.text} overlap`).toBe(false);
    }
  });

  it('tasker run --http serves the live report and /api/status while it runs, read-only', async () => {
    write('jobs.sh', 'sleep 3\necho quick\n');
    const port = await freePort();
    const run = tasker(
      ['run', 'jobs.sh', '--run-id', 'live-1', '-j', '2', '--http', String(port)],
      {
        cwd: dir,
      },
    );
    const base = `http://127.0.0.1:${port}`;
    let status: { run: string; state: string } | undefined;
    for (let i = 0; i < 100 && !status; i++) {
      status = await fetch(`${base}/api/status`)
        .then((response) => (response.ok ? (response.json() as Promise<typeof status>) : undefined))
        .catch(() => undefined);
      if (!status) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(status).toMatchObject({ run: 'live-1', state: 'running' });
    const { seen, errors } = await inBrowser(`${base}/`, async (page) => ({
      title: await page.title(),
      refresh: await page.locator('meta[http-equiv="refresh"]').getAttribute('content'),
    }));
    expect(errors).toEqual([]);
    expect(seen).toEqual({ title: 'Warren run live-1: running', refresh: '5' });
    expect((await fetch(`${base}/`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${base}/nothing`)).status).toBe(404);
    const result = await run;
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain(`live view of run live-1 on http://127.0.0.1:${port}/`);
    // Gone with the tasker.
    await expect(fetch(`${base}/api/status`)).rejects.toThrow();
  });
});

describe('tasker logs and status', () => {
  it('prints a task by id prefix or command piece, and follows a running one to its end', async () => {
    write(
      'jobs.sh',
      'echo hello; echo oops >&2\nfor i in 1 2 3 4 5 6; do echo tick $i; sleep 0.3; done\n',
    );
    const run = tasker(['run', 'jobs.sh', '--run-id', 'logs-1', '-j', '2'], { cwd: dir });
    // Following the slow task from (nearly) its start prints every line, then exits 0.
    let follow: Awaited<ReturnType<typeof tasker>> | undefined;
    for (let i = 0; i < 50 && !follow?.stdout.includes('tick'); i++) {
      follow = await tasker(['logs', 'tick $i', '-f'], { cwd: dir });
      if (follow.exitCode !== 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(follow?.exitCode).toBe(0);
    expect(follow?.stdout.split('\n').filter((line) => line.startsWith('tick'))).toEqual([
      'tick 1',
      'tick 2',
      'tick 3',
      'tick 4',
      'tick 5',
      'tick 6',
    ]);
    expect((await run).exitCode).toBe(0);
    const ends = endsOf(ledgerOf(join(dir, '.warren'), 'logs-1'));
    const hello = ends.find((end) => end.command.startsWith('echo hello'));
    const byId = await tasker(['logs', (hello?.task ?? '').slice(0, 6)], { cwd: dir });
    expect(byId.exitCode).toBe(0);
    expect(byId.stdout).toBe('hello');
    expect(byId.stderr).toBe('oops');
    const ambiguous = await tasker(['logs', 'echo'], { cwd: dir });
    expect(ambiguous.exitCode).toBe(2);
    expect(ambiguous.stderr).toMatch(
      /^tasker: `echo` matches 2 tasks \(.*\): give more of the id or command$/,
    );
    const none = await tasker(['logs', 'nothing like it'], { cwd: dir });
    expect(none.exitCode).toBe(2);
    expect(none.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('status shows retried tasks and an ETA, lists failures with their class, and --watch follows a run', async () => {
    const sleeps = Array.from({ length: 6 }, () => 'sleep 0.5').join('\n');
    write('jobs.sh', `sh -c 'exit 3'\n${sleeps}\n`);
    const run = tasker(
      ['run', 'jobs.sh', '--run-id', 'st-1', '-j', '1', '--retries', '1', '--retry-delay', '10ms'],
      { cwd: dir },
    );
    while (!existsSync(join(dir, '.warren/runs/st-1/ledger.jsonl')))
      await new Promise((resolve) => setTimeout(resolve, 50));
    // Not a terminal: --watch prints each change until the run ends.
    const watch = await tasker(['status', '--watch', '--run-id', 'st-1'], { cwd: dir });
    expect((await run).exitCode).toBe(1);
    expect(watch.exitCode).toBe(0);
    const frames = watch.stdout.split(/\n(?=run st-1: )/);
    expect(frames.length).toBeGreaterThan(1);
    expect(frames[0]).toMatch(/^run st-1: running/);
    expect(frames.at(-1)).toMatch(/^run st-1: failed/);
    // While it ran, a phase with tasks done and tasks left had an ETA.
    expect(watch.stdout).toMatch(
      /phase1\s+parallel\s+7\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+(\d+ms|\d+(\.\d)?s|\d+m\d\ds)/,
    );
    const status = await tasker(['status', '--failed', '--run-id', 'st-1'], { cwd: dir });
    expect(status.stdout).toMatch(
      /phase\s+kind\s+total\s+succeeded\s+failed\s+running\s+queued\s+retried\s+ETA/,
    );
    expect(status.stdout).toMatch(/phase1\s+parallel\s+7\s+6\s+1\s+0\s+0\s+1\s+-/);
    expect(status.stdout).toMatch(/\[phase1\] exit: exit 3 after 2 attempt\(s\): sh -c 'exit 3'/);
    const json = JSON.parse(
      (await tasker(['status', '--json', '--run-id', 'st-1'], { cwd: dir })).stdout,
    );
    expect(json.phases[0]).toMatchObject({ total: 7, retried: 1, etaMs: null });
  });
});
