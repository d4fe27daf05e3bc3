import { once } from 'node:events';
import { createWriteStream, existsSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { checkDirectory, makeDirs } from '../../shared/dirs.js';
import { describeSystemError, InfraError, InputError } from '../../shared/errors.js';
import { statePaths } from '../../shared/statePaths.js';
import { OccurrenceCounter, taskId } from '../../shared/taskId.js';
import type { PhasePlan } from './phasePlan.js';
import type { PhaseKind, PhaseRule, RuleSet } from './rules.js';
import { moveInto, type PhaseDraft, splitJobs } from './splitter.js';
import { spoolLine } from './spool.js';
import {
  allValueSets,
  checkTemplate,
  fillWith,
  placeholders,
  type SweepSource,
  valueSets,
} from './sweep.js';

function ensurePhasesDir(stateDir: string, run: string): string {
  const dir = statePaths.phasesDir(stateDir, run);
  try {
    makeDirs(dir);
  } catch (error) {
    throw new InfraError(
      'STATE_UNWRITABLE',
      `cannot create \`${dir}\`: ${describeSystemError(error)}`,
      { cause: error },
    );
  }
  return dir;
}

/**
 * Splits a jobs file into a run's phases: each phase's tasks go to a phase file under the run
 * (`runs/<run>/phases/<phase>.jsonl`, one `[id, command]` per line), so a run of a million
 * tasks is read once and never held in memory, and the run keeps a snapshot of what it ran.
 */
export async function planRun(
  jobs: string,
  rules: RuleSet,
  run: string,
  stateDir: string,
  sweep?: SweepSource,
): Promise<PhasePlan[]> {
  // With a sweep, every line that has placeholders becomes one task per value set.
  let known: ReadonlySet<string> = new Set();
  const sets = sweep
    ? await allValueSets(sweep, (names) => {
        known = names;
      })
    : [];
  const dir = ensurePhasesDir(stateDir, run);
  const counter = new OccurrenceCounter();
  let templated = 0;
  const line = (phase: string, text: string) => {
    const first = taskId(run, phase, text);
    const occurrence = counter.next(first);
    return spoolLine(occurrence === 0 ? first : taskId(run, phase, text, occurrence), text);
  };
  const drafts = await splitJobs(
    jobs,
    rules,
    {
      tempFile: (_name, index) => join(dir, `.draft-${process.pid}-${index}.jsonl`),
      format: (phase, text) => {
        if (!sweep || placeholders(text).length === 0) return line(phase, text);
        checkTemplate(
          text,
          known,
          `the line \`${text.length > 60 ? `${text.slice(0, 57)}...` : text}\``,
        );
        templated++;
        return sets.map((values) => line(phase, fillWith(text, values)));
      },
    },
    'run',
  );
  if (sweep && templated === 0) {
    for (const draft of drafts) rmSync(draft.file, { force: true });
    throw new InputError(
      'NO_PLACEHOLDERS',
      `${sweep.kind === 'params' ? '--params' : '--seq'} was given, but no line of \`${jobs}\` has {placeholders}`,
    );
  }
  return place(drafts, (draft) => statePaths.spool(stateDir, run, draft.name));
}

/**
 * `tasker send --params FILE TEMPLATE` (or `--seq N`): one phase (parallel unless `--serial`)
 * of the template filled with each value set, streamed into the phase file.
 */
export async function planSweep(
  template: string,
  sweep: SweepSource,
  name: string,
  run: string,
  stateDir: string,
  kind: PhaseKind = 'parallel',
): Promise<PhasePlan> {
  if (placeholders(template).length === 0) {
    throw new InputError(
      'NO_PLACEHOLDERS',
      `the command \`${template}\` has no {placeholders}: every task would be the same`,
    );
  }
  const dir = ensurePhasesDir(stateDir, run);
  const draft = join(dir, `.draft-${process.pid}-sweep.jsonl`);
  const spool = statePaths.spool(stateDir, run, name);
  const counter = new OccurrenceCounter();
  const out = createWriteStream(draft);
  let total = 0;
  try {
    for await (const values of valueSets(sweep, (known) =>
      checkTemplate(template, known, 'the command'),
    )) {
      const command = fillWith(template, values);
      const first = taskId(run, name, command);
      const occurrence = counter.next(first);
      const id = occurrence === 0 ? first : taskId(run, name, command, occurrence);
      if (!out.write(spoolLine(id, command))) await once(out, 'drain');
      total++;
    }
    await new Promise<void>((resolve, reject) =>
      out.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
  } catch (error) {
    out.destroy();
    rmSync(draft, { force: true });
    throw error;
  }
  await moveInto(draft, spool);
  return { name, kind, total, spool };
}

async function place(
  drafts: PhaseDraft[],
  target: (draft: PhaseDraft) => string,
): Promise<PhasePlan[]> {
  const plans: PhasePlan[] = [];
  for (const draft of drafts) {
    const spool = target(draft);
    await moveInto(draft.file, spool);
    plans.push({ name: draft.name, kind: draft.kind, total: draft.lines, spool });
  }
  return plans;
}

/** The rule set of `tasker send`: the whole file is one phase (parallel unless `--serial`). */
export function singlePhase(name: string, file: string, kind: PhaseKind = 'parallel'): RuleSet {
  const rule: PhaseRule = { name, kind, test: () => true };
  return {
    name: 'send',
    phases: [rule],
    rest: undefined,
    keepEmpty: false,
    emptyIsError: false,
    instanceName: (phase, segment) => {
      if (segment > 1) {
        throw new InputError(
          'WAIT_IN_SEND',
          `\`${file}\` has \`wait\` lines, but \`tasker send\` runs one phase; use \`tasker run\``,
        );
      }
      return phase.name;
    },
  };
}

/** The default phase name of `tasker send FILE`: the file's name. */
export function phaseNameOf(file: string): string {
  return (
    basename(file)
      .replace(/[^A-Za-z0-9_-]/g, '-')
      .replace(/^-+/, '')
      .slice(0, 40) || 'send'
  );
}

/** One serial step (`tasker once NAME -- CMD`) as a phase of the run. */
export function planOnce(name: string, command: string, run: string, stateDir: string): PhasePlan {
  ensurePhasesDir(stateDir, run);
  const spool = statePaths.spool(stateDir, run, name);
  try {
    writeFileSync(spool, spoolLine(taskId(run, name, command), command));
  } catch (error) {
    throw new InfraError(
      'STATE_UNWRITABLE',
      `cannot write \`${spool}\`: ${describeSystemError(error)}`,
      { cause: error },
    );
  }
  return { name, kind: 'serial', total: 1, spool };
}

/** A part file written by `tasker split`. */
export interface PartFile extends PhaseDraft {
  readonly part: number;
}

/**
 * `tasker split`: writes `<JOBS>.part1`, `.part2`, ... into `outDir` (default: beside JOBS),
 * one per phase in order, each line as written in the jobs file.
 */
export async function splitToParts(
  jobs: string,
  rules: RuleSet,
  outDir = dirname(jobs),
): Promise<PartFile[]> {
  checkDirectory(outDir, 'output directory');
  const base = basename(jobs);
  const drafts = await splitJobs(
    jobs,
    rules,
    {
      tempFile: (_name, index) => join(outDir, `.${base}.warren-${process.pid}-${index}.tmp`),
      // Each line as read, with its line break (asreview-cloud's rules keep a missing last one).
      format: (_phase, text, ending) => `${text}${ending}`,
    },
    'split',
  );
  const parts: PartFile[] = [];
  for (const [index, draft] of drafts.entries()) {
    const file = join(outDir, `${base}.part${index + 1}`);
    await moveInto(draft.file, file);
    parts.push({ ...draft, file, part: index + 1 });
  }
  // Parts left from an earlier split into more phases would read as phases of this one.
  for (let part = parts.length + 1; existsSync(join(outDir, `${base}.part${part}`)); part++) {
    rmSync(join(outDir, `${base}.part${part}`), { force: true });
  }
  return parts;
}
