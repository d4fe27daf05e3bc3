// The signature of a failure: the last line a failed attempt printed, with what differs from one
// task to the next (paths, numbers, ids) masked, so that tasks failing for one cause share it.
// docs/observing.md lists the masks with examples; keep the two in step.

/** Characters kept of a line (raw or masked); the rest is cut, ending in `…`. */
export const SIGNATURE_LENGTH = 200;

/** Terminal colour and cursor sequences (`\x1b[31m`): never part of what a line says. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the escape character is the point
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

/**
 * The masks, applied in this order: URLs and paths first (an id or a number inside one is part
 * of it), then the rest. A placeholder never matches a later mask: none holds a digit, a slash
 * or a hex run.
 */
const MASKS: readonly (readonly [RegExp, string | ((match: string) => string)])[] = [
  // https://host:9000/bucket/key, s3://bucket/key
  [/\b[a-z][a-z0-9+.-]*:\/\/[^\s'"`<>()[\]{}]+/gi, '<url>'],
  // /tmp/x/123.csv, ./out/a.csv, ~/data, data/run-3/x.csv: a word with a slash in it. A colon
  // ends it (`/tmp/a.py:12` is a path and a line number), and so do quotes, brackets, `,;=`.
  [
    /[^\s'"`<>()[\]{},;:=]*\/[^\s'"`<>()[\]{},;:=]*/g,
    (word) => (/^\/+$/.test(word) ? word : '<path>'),
  ],
  // 123e4567-e89b-12d3-a456-426614174000
  [/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, '<uuid>'],
  // 2026-12-01T10:00:00.123Z, 2026-12-01 10:00:00, 2026-12-01
  [
    /\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?/g,
    '<time>',
  ],
  // 0x7ffd5e8c; runs of 8+ hex digits with a digit and a letter (task ids, digests)
  [/\b0x[0-9a-f]+\b/gi, '<hex>'],
  [/\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b/gi, '<hex>'],
  // 42, 3.14, 10.0.0.1, run_7, -3 (as -<n>): digits not glued to a letter or digit before them
  // (python3, sha256, v1.2 stay)
  [/(?<![A-Za-z0-9.])\d+(?:\.\d+)*/g, '<n>'],
];

function bounded(text: string): string {
  return text.length > SIGNATURE_LENGTH ? `${text.slice(0, SIGNATURE_LENGTH - 1)}…` : text;
}

/**
 * The last line an attempt printed that says anything: the last non-blank line of its error
 * tail (the end of its stderr, or of its stdout when stderr was empty), without terminal escape
 * sequences, at most SIGNATURE_LENGTH characters. Empty when it printed nothing.
 */
export function lastLine(errorTail: string): string {
  const lines = errorTail.replace(ANSI, '').split(/\r?\n|\r/);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = (lines[i] as string).replace(/\s+/g, ' ').trim();
    if (line !== '') return bounded(line);
  }
  return '';
}

/**
 * A line with its paths, URLs, uuids, times, hex ids and numbers masked:
 * `cannot open /tmp/x/123.csv (errno 2)` -> `cannot open <path> (errno <n>)`.
 */
export function normalizeSignature(line: string): string {
  let text = line.replace(ANSI, '').replace(/\s+/g, ' ').trim();
  for (const [pattern, mask] of MASKS)
    text = typeof mask === 'string' ? text.replace(pattern, mask) : text.replace(pattern, mask);
  return bounded(text);
}
