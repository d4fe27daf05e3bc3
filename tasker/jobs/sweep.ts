import { createReadStream } from 'node:fs';
import { quote } from 'shell-quote';
import { describeSystemError, InputError } from '../../shared/errors.js';

/**
 * Parameter sweeps: a command template with `{name}` placeholders, filled once per row of a CSV
 * file (`--params`) or once per number 1..N (`--seq N`, placeholder `{index}`).
 *
 * A placeholder is `{` + a name (letters, digits, `_`, `-`, `.`, starting with a letter or `_`)
 * + `}`, anywhere in the command, any number per word. Values are shell-quoted, so a value with
 * spaces or quotes stays one argument. `${NAME}` (shell parameter expansion) is left alone, as
 * is anything in braces that is not a name (`{print $1}`); `{{` and `}}` write `{` and `}`.
 */

const TOKEN = /\{\{|\}\}|(?<!\$)\{([A-Za-z_][A-Za-z0-9_.-]*)\}/g;

/** The placeholder names of a template, in order of first use. */
export function placeholders(template: string): string[] {
  const names = new Set<string>();
  for (const match of template.matchAll(TOKEN)) if (match[1]) names.add(match[1]);
  return [...names];
}

/** The template with each placeholder replaced by its shell-quoted value. */
export function fill(template: string, values: (name: string) => string): string {
  return template.replace(TOKEN, (token, name: string | undefined) => {
    if (token === '{{') return '{';
    if (token === '}}') return '}';
    return quote([values(name as string)]);
  });
}

/** Where the values come from. */
export type SweepSource =
  | { readonly kind: 'params'; readonly file: string }
  | { readonly kind: 'seq'; readonly count: number };

/** One set of values: a CSV row (with `index`, from 1), or just `index`. */
export type Values = ReadonlyMap<string, string>;

function unknown(names: readonly string[], known: ReadonlySet<string>, where: string): void {
  const missing = names.filter((name) => !known.has(name));
  if (missing.length > 0) {
    throw new InputError(
      'UNKNOWN_PLACEHOLDER',
      `${where} uses ${missing.map((name) => `{${name}}`).join(', ')}, but the parameters have ${
        known.size === 0 ? 'none' : [...known].map((name) => `{${name}}`).join(', ')
      }`,
    );
  }
}

/**
 * The value sets of a sweep, streamed: CSV rows are read one at a time (quoting, a header
 * row, a byte-order mark, CRLF). Before the first value set, `check` is called with the names
 * that will be available, so that a template using an unknown one fails before anything runs.
 */
export async function* valueSets(
  source: SweepSource,
  check: (known: ReadonlySet<string>) => void,
): AsyncGenerator<Values> {
  if (source.kind === 'seq') {
    check(new Set(['index']));
    for (let index = 1; index <= source.count; index++) yield new Map([['index', String(index)]]);
    return;
  }
  // Loaded when a sweep reads a CSV file, not at every start of the tasker.
  const { parse } = await import('csv-parse');
  const input = createReadStream(source.file);
  const parser = parse({
    bom: true,
    columns: (header: string[]) => {
      const names = header.map((name) => name.trim());
      const bad = names.find((name) => !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name));
      if (bad !== undefined) {
        throw new InputError(
          'BAD_PARAMS',
          `\`${source.file}\`: column ${JSON.stringify(bad)} is not a usable name (letters, digits, _, -, ., starting with a letter or _)`,
        );
      }
      const seen = new Set<string>();
      for (const name of names) {
        if (seen.has(name))
          throw new InputError(
            'BAD_PARAMS',
            `\`${source.file}\`: column \`${name}\` appears twice`,
          );
        seen.add(name);
      }
      check(new Set([...names, 'index']));
      return names;
    },
    skip_empty_lines: true,
  });
  input.on('error', (error) => parser.destroy(error));
  input.pipe(parser);
  let index = 0;
  let header = false;
  parser.once('data', () => {
    header = true;
  });
  try {
    for await (const row of parser as AsyncIterable<Record<string, string>>) {
      index++;
      yield new Map([...Object.entries(row), ['index', String(index)]]);
    }
  } catch (error) {
    if (error instanceof InputError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') {
      throw new InputError(
        'PARAMS_UNREADABLE',
        `cannot read parameters \`${source.file}\`: ${describeSystemError(error)}`,
      );
    }
    // csv-parse says where: "Invalid Record Length: expect 3, got 2 on line 4".
    throw new InputError(
      'BAD_PARAMS',
      `\`${source.file}\` is not valid CSV: ${(error as Error).message}`,
    );
  }
  if (index === 0) {
    throw new InputError(
      'EMPTY_PARAMS',
      `\`${source.file}\` has no rows${header ? '' : ' (the first line is the header of column names)'}`,
    );
  }
}

/** Reads all value sets (for `tasker run`, whose every templated line is filled with each). */
export async function allValueSets(
  source: SweepSource,
  check: (known: ReadonlySet<string>) => void,
): Promise<Values[]> {
  const sets: Values[] = [];
  for await (const values of valueSets(source, check)) sets.push(values);
  return sets;
}

/** Checks a template's placeholders against the names a sweep provides. */
export function checkTemplate(template: string, known: ReadonlySet<string>, where: string): void {
  unknown(placeholders(template), known, where);
}

/** Fills a template with one value set. */
export function fillWith(template: string, values: Values): string {
  return fill(template, (name) => values.get(name) ?? '');
}
