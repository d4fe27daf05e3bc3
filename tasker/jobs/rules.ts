import { InputError } from '../../shared/errors.js';
import { ASREVIEW_CLOUD } from './asreviewCloud.js';

/** Serial phases run in the tasker, one step at a time; parallel ones go to the transport. */
export type PhaseKind = 'serial' | 'parallel';

/** One phase of a rule set: the lines it takes, in file order. */
export interface PhaseRule {
  readonly name: string;
  readonly kind: PhaseKind;
  /** Whether this phase takes a line (when no earlier phase took it). */
  readonly test: (line: string) => boolean;
}

/** What a split is for: the parts a person reads (`tasker split`), or the tasks of a run. */
export type SplitPurpose = 'split' | 'run';

/** A line a rule set placed itself: its phase rule's index, and the line break it had. */
export interface PlacedLine {
  readonly number: number;
  readonly text: string;
  readonly ending: '\n' | '';
  readonly rule: number;
}

/**
 * How a jobs file becomes phases. A line goes to the first phase whose rule takes it, unless
 * the rule set places lines itself (`place`).
 */
export interface RuleSet {
  /** `asreview-cloud`, `makita`, `custom` or `wait` (no rules: `wait` lines only). */
  readonly name: string;
  readonly phases: readonly PhaseRule[];
  /** The phase for lines no rule takes; without one such a line is an error. */
  readonly rest: string | undefined;
  /** Write every phase, even an empty one (asreview-cloud's tasker.sh expects three parts). */
  readonly keepEmpty: boolean;
  /** A phase that takes no line is an error (a typo in a `--phase` pattern, most likely). */
  readonly emptyIsError: boolean;
  /** Phase name in the `segment`-th stretch between `wait` lines (1-based). */
  readonly instanceName: (rule: PhaseRule, segment: number) => string;
  /**
   * Reads the file itself and places each line (asreview-cloud's split, where a line's part
   * depends on where it stands): no `wait` barriers, its own line handling, and parts written
   * with the line breaks it reports.
   */
  readonly place?: (path: string, purpose: SplitPurpose) => AsyncIterable<PlacedLine>;
  /** Checks a file before a run connects to anything; throws InputError. */
  readonly check?: (path: string) => Promise<void>;
}

/** Phase names end up in file names and queue names. */
const PHASE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/;

/** Validates a phase or step name given by a person. */
export function checkPhaseName(name: string): string {
  if (!PHASE_NAME.test(name)) {
    throw new InputError(
      'BAD_PHASE_NAME',
      `invalid phase name \`${name}\`: use up to 40 letters, digits, _ or -, starting with a letter or digit`,
    );
  }
  return name;
}

/**
 * Phases of the later stretches between `wait` lines are `NAME.2`, `NAME.3`...: a dot cannot
 * be in a name a person gives, so these never clash with one.
 */
const suffixed = (rule: PhaseRule, segment: number): string =>
  segment === 1 ? rule.name : `${rule.name}.${segment}`;

/**
 * A dependency-correct split of Makita's jobs files. asreview-cloud's part 3 runs `asreview
 * metrics` beside the scripts that read the metrics files; here each reader waits for what
 * it reads: prepare (serial) → simulate → metrics → per-dataset plots and tables → merges
 * (serial).
 */
const makita: RuleSet = {
  name: 'makita',
  phases: [
    {
      name: 'prepare',
      kind: 'serial',
      test: (line) => /^\s*mkdir\s/.test(line) || /\bdata_describe\.py\b/.test(line),
    },
    { name: 'simulate', kind: 'parallel', test: (line) => /\basreview\s+simulate\b/.test(line) },
    { name: 'metrics', kind: 'parallel', test: (line) => /\basreview\s+metrics\b/.test(line) },
    {
      name: 'tables',
      kind: 'parallel',
      test: (line) => /\bscripts\/(get_plot|merge_\w+)\.py\b/.test(line) && /\s-s\s/.test(line),
    },
    { name: 'merge', kind: 'serial', test: (line) => /\bscripts\/merge_\w+\.py\b/.test(line) },
  ],
  rest: undefined,
  keepEmpty: false,
  emptyIsError: false,
  instanceName: suffixed,
};

/** No rules: `wait` lines separate phases `phase1`, `phase2`, ...; all parallel. */
export const WAIT_RULES: RuleSet = {
  name: 'wait',
  phases: [{ name: 'phase', kind: 'parallel', test: () => true }],
  rest: undefined,
  keepEmpty: false,
  emptyIsError: false,
  instanceName: (rule, segment) => `${rule.name}${segment}`,
};

/** The built-in rule sets, by the name `--rules` takes. */
export const BUILTIN_RULES: ReadonlyMap<string, RuleSet> = new Map([
  [ASREVIEW_CLOUD.name, ASREVIEW_CLOUD],
  [makita.name, makita],
]);

/** Turns `--phase NAME=REGEX` specs into phase rules, in order. */
function customPhases(specs: readonly string[]): PhaseRule[] {
  return specs.map((spec) => {
    const eq = spec.indexOf('=');
    if (eq <= 0) {
      throw new InputError('BAD_PHASE', `invalid --phase \`${spec}\`: expected NAME=REGEX`);
    }
    const name = checkPhaseName(spec.slice(0, eq));
    const source = spec.slice(eq + 1);
    if (source === '')
      throw new InputError('BAD_PHASE', `invalid --phase \`${spec}\`: the pattern is empty`);
    let pattern: RegExp;
    try {
      pattern = new RegExp(source);
    } catch (error) {
      const why =
        error instanceof Error
          ? error.message.replace(/^Invalid regular expression: /, '')
          : String(error);
      throw new InputError('BAD_REGEX', `invalid pattern for phase \`${name}\`: ${why}`);
    }
    return { name, kind: 'parallel', test: (line: string) => pattern.test(line) };
  });
}

export interface RuleOptions {
  /** `--rules NAME`. */
  readonly rules?: string;
  /** `--phase NAME=REGEX`, in order. */
  readonly phases?: readonly string[];
  /** `--rest NAME`: the phase for lines no rule takes. */
  readonly rest?: string;
  /** `--serial NAME`: phases to run serially in the tasker. */
  readonly serial?: readonly string[];
}

/** Builds the rule set the flags ask for; every mistake is an InputError before any work. */
export function resolveRules(options: RuleOptions): RuleSet {
  const specs = options.phases ?? [];
  if (options.rules !== undefined && specs.length > 0) {
    throw new InputError('CONFLICTING_FLAGS', '--rules and --phase cannot be used together');
  }
  let base: RuleSet;
  if (options.rules !== undefined) {
    const builtin = BUILTIN_RULES.get(options.rules);
    if (!builtin) {
      throw new InputError(
        'UNKNOWN_RULES',
        `unknown rules \`${options.rules}\`: expected one of ${[...BUILTIN_RULES.keys()].join(', ')}`,
      );
    }
    base = builtin;
  } else if (specs.length > 0) {
    const phases = customPhases(specs);
    const seen = new Set<string>();
    for (const phase of phases) {
      if (seen.has(phase.name))
        throw new InputError('BAD_PHASE', `phase \`${phase.name}\` is given twice`);
      seen.add(phase.name);
    }
    base = {
      name: 'custom',
      phases,
      rest: undefined,
      keepEmpty: false,
      emptyIsError: true,
      instanceName: suffixed,
    };
  } else {
    if (options.rest !== undefined)
      throw new InputError('BAD_FLAGS', '--rest needs --rules or --phase');
    base = WAIT_RULES;
  }
  let phases = base.phases;
  let rest = base.rest;
  if (options.rest !== undefined && base.place) {
    throw new InputError(
      'BAD_FLAGS',
      `--rest has no use with --rules ${base.name}: every line has a part`,
    );
  }
  if (options.rest !== undefined) {
    rest = checkPhaseName(options.rest);
    if (!phases.some((phase) => phase.name === rest)) {
      phases = [...phases, { name: rest, kind: 'parallel', test: () => false }];
    }
  }
  const serial = new Set(options.serial ?? []);
  for (const name of serial) {
    if (!phases.some((phase) => phase.name === name)) {
      throw new InputError('BAD_PHASE', `--serial names unknown phase \`${name}\``);
    }
  }
  phases = phases.map((phase) => (serial.has(phase.name) ? { ...phase, kind: 'serial' } : phase));
  return { ...base, phases, rest };
}

/**
 * The index of the phase rule a line belongs to, or -1 when no rule takes it and there is no
 * rest phase.
 */
export function classify(rules: RuleSet, line: string): number {
  const index = rules.phases.findIndex((phase) => phase.test(line));
  if (index >= 0 || rules.rest === undefined) return index;
  return rules.phases.findIndex((phase) => phase.name === rules.rest);
}
