import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { brokerVersion, startTestBroker, TEST_BROKER_LINE } from '../helpers/broker.js';
import { FIGURES, type Figure } from './figures.js';

declare module 'vitest' {
  export interface ProvidedContext {
    rabbitmqUrl: string;
    /** JSON lines of figures the fault tests add up. */
    faultFigures: string;
  }
}

/** A shared broker for the fault tests that do not restart theirs, and the closing table. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const broker = await startTestBroker();
  const version = await brokerVersion(broker.url);
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'warren-faults-'));
  const figures = join(dir, 'figures.jsonl');
  project.provide('rabbitmqUrl', broker.url);
  project.provide('faultFigures', figures);
  project.provide('rabbitmqCtl', [...(broker.ctlCommand ?? [])]);
  return async () => {
    const totals = new Map<Figure, number>(FIGURES.map(([key]) => [key, 0]));
    let lines: string[] = [];
    try {
      lines = readFileSync(figures, 'utf8').split('\n').filter(Boolean);
    } catch {
      // no fault test ran
    }
    for (const line of lines) {
      const entry = JSON.parse(line) as Partial<Record<Figure, number>>;
      for (const [key, value] of Object.entries(entry))
        totals.set(key as Figure, (totals.get(key as Figure) ?? 0) + (value ?? 0));
    }
    const width = Math.max(...FIGURES.map(([, label]) => label.length));
    const out = [
      '',
      `warren fault suite on RabbitMQ ${version || '(version unknown)'} (shared: ${broker.source}; private nodes: ${TEST_BROKER_LINE === '4' ? 'podman, WARREN_TEST_BROKER=4' : "Debian's rabbitmq-server"}), ${Math.round((Date.now() - started) / 1000)} s`,
      ...FIGURES.map(
        ([key, label, must]) =>
          `  ${label.padEnd(width)}  ${String(totals.get(key)).padStart(6)}${must === undefined ? '' : `  (must be ${must})`}`,
      ),
      '',
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    rmSync(dir, { recursive: true, force: true });
    await broker.stop();
  };
}
