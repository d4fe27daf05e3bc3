import { InputError } from '../../shared/errors.js';
import type { PlacedLine, RuleSet, SplitPurpose } from './rules.js';
import { readTextLines } from './textLines.js';

/**
 * The characters Python's `str.isspace()` takes, which `str.strip()` removes: JavaScript's
 * `trim()` differs (it strips U+FEFF, keeps U+001C to U+001F and U+0085).
 */
const PYTHON_SPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001,
  0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f,
  0x205f, 0x3000,
]);

const blank = (text: string): boolean => {
  for (let i = 0; i < text.length; i++) if (!PYTHON_SPACE.has(text.charCodeAt(i))) return false;
  return true;
};

/**
 * A line split-file.py leaves out of every part: blank (nothing but whitespace as Python sees
 * it) or a comment, which to it is a line whose very first character is `#`: an indented
 * `  # note` is a command line.
 */
const leftOut = (text: string): boolean => text[0] === '#' || blank(text);

const WORD = 'simulate';

/** What part 1 takes between the first and the last `simulate` line (folders, descriptions). */
const setUp = (text: string): boolean => text.includes('mkdir') || text.includes('describe');
const simulates = (text: string): boolean => text.includes(WORD);

/**
 * The first and last line (1-based) containing `simulate` anywhere, comments included. For a
 * run it also refuses what would run broken: a NUL byte, and a line ending in `\`, whose
 * continuation split-file.py may put in another part.
 */
async function simulateSpan(
  path: string,
  purpose: SplitPurpose,
): Promise<{ first: number; last: number }> {
  let first = 0;
  let last = 0;
  for await (const { number, text } of readTextLines(path)) {
    if (purpose === 'run' && !leftOut(text)) refuseBroken(path, number, text);
    if (!simulates(text)) continue;
    if (first === 0) first = number;
    last = number;
  }
  if (first === 0) {
    throw new InputError(
      'NO_SIMULATE',
      `\`${path}\` has no line containing \`simulate\`: asreview-cloud's split needs one (use --rules makita or --phase)`,
    );
  }
  return { first, last };
}

function refuseBroken(path: string, number: number, text: string): void {
  if (text.includes('\0')) {
    throw new InputError(
      'JOBS_BINARY',
      `\`${path}\` is not a text file: NUL byte on line ${number}`,
    );
  }
  if (text.endsWith('\\')) {
    throw new InputError(
      'CONTINUED_LINE',
      `line ${number} of \`${path}\` ends in \`\\\`: asreview-cloud's split cuts a command continued over lines apart (use --rules makita or --phase)`,
    );
  }
}

const PART1 = 0;
const PART2 = 1;
const PART3 = 2;

/**
 * Places each line as asreview-cloud's split-file.py (commit 7ac3c8a) does. Lines before the
 * first line containing `simulate` go to part 1, lines after the last such line to part 3,
 * whatever they hold. Between them (both included) a line containing `mkdir` or `describe`
 * goes to part 1, else one containing `simulate` to part 2, else to part 3. The words count
 * anywhere in the line (`mkdir simulate_runs` is part 1, `cp x simulate_runs/` part 2). Blank
 * lines and comments are left out, but a comment containing `simulate` still counts for the
 * first and last. The file is read twice, streaming; a run refuses what `simulateSpan` says.
 */
async function* place(path: string, purpose: SplitPurpose): AsyncGenerator<PlacedLine> {
  const { first, last } = await simulateSpan(path, purpose);
  for await (const line of readTextLines(path)) {
    const { number, text } = line;
    if (leftOut(text)) continue;
    let rule: number;
    if (number < first) rule = PART1;
    else if (number > last) rule = PART3;
    else if (setUp(text)) rule = PART1;
    else if (simulates(text)) rule = PART2;
    else rule = PART3;
    yield { ...line, rule };
  }
}

/**
 * asreview-cloud's split-file.py, to the byte: three parts, part 1 run serially. The phases'
 * tests say what each part takes between the first and the last `simulate` line; `place`
 * decides, since a line's part also depends on where it stands. No `wait` barriers: to
 * split-file.py `wait` is a line like any other.
 */
export const ASREVIEW_CLOUD: RuleSet = {
  name: 'asreview-cloud',
  phases: [
    { name: 'part1', kind: 'serial', test: setUp },
    { name: 'part2', kind: 'parallel', test: simulates },
    { name: 'part3', kind: 'parallel', test: () => true },
  ],
  rest: undefined,
  keepEmpty: true,
  emptyIsError: false,
  instanceName: (rule) => rule.name,
  place,
  check: async (path) => {
    await simulateSpan(path, 'run');
  },
};
