import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { describeSystemError, InfraError, InputError, WarrenError } from '../../shared/errors.js';
import { readJobs } from './jobsFile.js';
import {
  classify,
  type PhaseKind,
  type PlacedLine,
  type RuleSet,
  type SplitPurpose,
} from './rules.js';

/** One phase as the split found it. */
export interface PhaseDraft {
  readonly name: string;
  readonly kind: PhaseKind;
  readonly lines: number;
  /** The file its lines were written to, in file order. */
  readonly file: string;
}

/** Where a phase's lines go while the file is read. */
export interface PhaseSinkFactory {
  /** A temporary file for the phase; it is renamed or deleted when the split ends. */
  tempFile(name: string, index: number): string;
  /**
   * Formats one line for the file (raw for `split`, `[id, command]` JSON for a run's spool).
   * `ending` is the line's own line break where the rule set reads lines itself, else `\n`.
   */
  format(name: string, text: string, ending: '\n' | ''): string | readonly string[];
}

/** A buffered, backpressure-aware writer of one file. */
class FileSink {
  private readonly stream: WriteStream;
  private failure: unknown;

  constructor(readonly path: string) {
    this.stream = createWriteStream(path, { highWaterMark: 256 * 1024 });
    this.stream.on('error', (error) => {
      this.failure = error;
    });
  }

  async write(text: string): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.stream.write(text)) await once(this.stream, 'drain');
  }

  async close(): Promise<void> {
    if (this.failure) throw this.failure;
    this.stream.end();
    await once(this.stream, 'finish');
  }

  async discard(): Promise<void> {
    this.stream.destroy();
    await rm(this.path, { force: true });
  }
}

interface Bucket {
  readonly name: string;
  readonly kind: PhaseKind;
  readonly segment: number;
  readonly rule: number;
  readonly sink: FileSink;
  lines: number;
}

const shorten = (text: string) => (text.length > 80 ? `${text.slice(0, 77)}...` : text);

/** A `wait` barrier, or a line with its phase rule. */
type Placed = { readonly kind: 'wait' } | ({ readonly kind: 'line' } & PlacedLine);

/** The file's entries, each placed by the first phase rule that takes it. */
async function* classified(path: string, rules: RuleSet): AsyncGenerator<Placed> {
  for await (const entry of readJobs(path)) {
    if (entry.kind === 'wait') {
      yield entry;
      continue;
    }
    const rule = classify(rules, entry.text);
    if (rule < 0) {
      throw new InputError(
        'UNMATCHED_LINE',
        `line ${entry.line} of \`${path}\` matches no ${rules.name} phase: \`${shorten(entry.text)}\`; add --rest NAME to put such lines in a phase`,
      );
    }
    yield { kind: 'line', number: entry.line, text: entry.text, ending: '\n', rule };
  }
}

async function* placed(
  path: string,
  rules: RuleSet,
  purpose: SplitPurpose,
): AsyncGenerator<Placed> {
  for await (const line of rules.place?.(path, purpose) ?? []) yield { kind: 'line', ...line };
}

/**
 * Reads a jobs file once, streaming, and writes each line to its phase's file. Phases come
 * back in order: by stretch between `wait` lines, then by rule. On any error every file
 * written so far is deleted, so there is never a half-written split.
 */
export async function splitJobs(
  path: string,
  rules: RuleSet,
  sinks: PhaseSinkFactory,
  purpose: SplitPurpose,
): Promise<PhaseDraft[]> {
  const buckets = new Map<string, Bucket>();
  const open = (segment: number, rule: number): Bucket => {
    const key = `${segment}:${rule}`;
    let bucket = buckets.get(key);
    if (!bucket) {
      const phase = rules.phases[rule];
      if (!phase) throw new Error(`no phase rule ${rule}`);
      const name = rules.instanceName(phase, segment);
      bucket = {
        name,
        kind: phase.kind,
        segment,
        rule,
        sink: new FileSink(sinks.tempFile(name, buckets.size)),
        lines: 0,
      };
      buckets.set(key, bucket);
    }
    return bucket;
  };
  try {
    let segment = 1;
    let commands = 0;
    let inSegment = 0;
    const entries = rules.place ? placed(path, rules, purpose) : classified(path, rules);
    for await (const entry of entries) {
      if (entry.kind === 'wait') {
        // Leading and repeated `wait` lines make no empty phases.
        if (inSegment > 0) segment++;
        inSegment = 0;
        continue;
      }
      const bucket = open(segment, entry.rule);
      const formatted = sinks.format(bucket.name, entry.text, entry.ending);
      if (typeof formatted === 'string') {
        await bucket.sink.write(formatted);
        bucket.lines++;
      } else {
        // A line that expands to several tasks (a parameter sweep).
        for (const line of formatted) await bucket.sink.write(line);
        bucket.lines += formatted.length;
      }
      commands++;
      inSegment++;
    }
    // A rule set that reads lines itself splits a file of comments as its original does (into
    // empty parts); a run of no commands is still an error.
    if (commands === 0 && !(rules.place && purpose === 'split')) {
      throw new InputError('JOBS_EMPTY', `jobs file \`${path}\` has no commands`);
    }
    if (rules.emptyIsError) {
      for (const [index, phase] of rules.phases.entries()) {
        if (phase.name === rules.rest) continue;
        if (![...buckets.values()].some((bucket) => bucket.rule === index)) {
          throw new InputError(
            'EMPTY_PHASE',
            `phase \`${phase.name}\` matches no line of \`${path}\``,
          );
        }
      }
    }
    if (rules.keepEmpty) {
      const segments = new Set([...buckets.values()].map((bucket) => bucket.segment));
      if (segments.size === 0) segments.add(1);
      for (const seg of segments) for (const index of rules.phases.keys()) open(seg, index);
    }
    const ordered = [...buckets.values()].sort((a, b) => a.segment - b.segment || a.rule - b.rule);
    for (const bucket of ordered) await bucket.sink.close();
    return ordered.map((bucket) => ({
      name: bucket.name,
      kind: bucket.kind,
      lines: bucket.lines,
      file: bucket.sink.path,
    }));
  } catch (error) {
    await Promise.all([...buckets.values()].map((bucket) => bucket.sink.discard()));
    if (error instanceof WarrenError) throw error;
    throw new InfraError(
      'SPLIT_FAILED',
      `cannot split \`${path}\`: ${describeSystemError(error)}`,
      { cause: error },
    );
  }
}

/** Moves a finished draft file into place (same file system). */
export async function moveInto(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    throw new InfraError('SPLIT_FAILED', `cannot write \`${to}\`: ${describeSystemError(error)}`, {
      cause: error,
    });
  }
}
