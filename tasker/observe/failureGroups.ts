import { InputError } from '../../shared/errors.js';
import { lastLine, normalizeSignature } from './failureSignature.js';
import type { TaskStatus } from './status.js';

/**
 * Failed tasks of one cause: the same failure class, exit code and signature (their last line
 * of output, masked). One entry of `groups` in `tasker status --failed --json` (docs/ledger.md).
 */
export interface FailureGroup {
  /** 1 for the largest group; what `tasker rerun --group N` takes. */
  readonly index: number;
  readonly count: number;
  /** The failure class (`exit`, `timeout`, `oom`, ...), null when the ledger has none. */
  readonly class: string | null;
  readonly exitCode: number | null;
  /** The masked last line (see failureSignature.ts); empty when the tasks printed nothing. */
  readonly signature: string;
  /** The group's first task, in phase and phase-file order. */
  readonly example: {
    readonly task: string;
    readonly phase: string;
    readonly command: string;
    readonly reason: string | null;
    /** Its last line of output as printed (bounded). */
    readonly line: string;
  };
  /** Ids of the group's tasks, in phase and phase-file order. */
  readonly tasks: readonly string[];
}

/**
 * The run's failed tasks grouped by class, exit code and signature: largest group first, ties in
 * the order their first task comes in the run (so the numbers are stable while the run is not
 * touched).
 */
export function groupFailures(tasks: readonly TaskStatus[]): FailureGroup[] {
  type Draft = Omit<FailureGroup, 'index' | 'count' | 'tasks'> & { tasks: string[]; first: number };
  const groups = new Map<string, Draft>();
  for (const task of tasks) {
    if (task.state !== 'failed') continue;
    const line = lastLine(task.errorTail);
    const signature = normalizeSignature(line);
    const key = JSON.stringify([task.failure, task.exitCode, signature]);
    let group = groups.get(key);
    if (!group) {
      const { id, phase, command, reason } = task;
      group = {
        class: task.failure,
        exitCode: task.exitCode,
        signature,
        example: { task: id, phase, command, reason, line },
        tasks: [],
        first: groups.size,
      };
      groups.set(key, group);
    }
    group.tasks.push(task.id);
  }
  return [...groups.values()]
    .sort((a, b) => b.tasks.length - a.tasks.length || a.first - b.first)
    .map(({ first: _, ...group }, at) => ({ index: at + 1, count: group.tasks.length, ...group }));
}

/** Which groups `tasker rerun` takes: every filter given must hold. */
export interface GroupFilter {
  /** `--group N`. */
  readonly group?: number;
  /** `--class C`: the failure class, exactly. */
  readonly class?: string;
  /** `--signature TEXT`: a piece of the signature, as shown, or of a line before masking. */
  readonly signature?: string;
}

/** The filters as the command line had them (`--group 1 --class exit`), for the ledger. */
export function describeFilter(filter: GroupFilter): string {
  const parts: string[] = [];
  if (filter.group !== undefined) parts.push(`--group ${filter.group}`);
  if (filter.class !== undefined) parts.push(`--class ${filter.class}`);
  if (filter.signature !== undefined) parts.push(`--signature ${JSON.stringify(filter.signature)}`);
  return parts.join(' ');
}

/**
 * The groups a filter takes, or an InputError saying why none: no failed task, no such group
 * number, nothing matching.
 */
export function selectGroups(
  groups: readonly FailureGroup[],
  filter: GroupFilter,
  run: string,
): FailureGroup[] {
  if (groups.length === 0)
    throw new InputError('NO_FAILED_TASKS', `run ${run} has no failed tasks`);
  if (filter.group !== undefined && filter.group > groups.length) {
    throw new InputError(
      'NO_SUCH_GROUP',
      `run ${run} has no failure group ${filter.group}: it has ${groups.length} (\`tasker status --failed\` lists them)`,
    );
  }
  const piece = filter.signature;
  const masked = piece === undefined ? undefined : normalizeSignature(piece);
  const chosen = groups.filter(
    (group) =>
      (filter.group === undefined || group.index === filter.group) &&
      (filter.class === undefined || group.class === filter.class) &&
      (piece === undefined ||
        group.signature.includes(piece) ||
        group.signature.includes(masked as string)),
  );
  if (chosen.length === 0) {
    throw new InputError(
      'NO_MATCHING_FAILURES',
      `no failed task of run ${run} matches ${describeFilter(filter)} (\`tasker status --failed\` lists the groups)`,
    );
  }
  return chosen;
}

const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;

/** What a group's tasks have in common, in words: `exit 3`, `timeout`, `oom, exit 137`. */
function causeOf(group: FailureGroup): string {
  const failure = group.class ?? 'failed';
  if (group.exitCode === null) return failure;
  return failure === 'exit' ? `exit ${group.exitCode}` : `${failure}, exit ${group.exitCode}`;
}

/** The groups in `tasker status --failed`: numbered, each with a count and one example. */
export function formatGroups(groups: readonly FailureGroup[]): string {
  if (groups.length === 0) return '';
  const lines = [
    '',
    `failures by cause (class, exit code, last line masked): ${plural(groups.length, 'group')}; \`tasker rerun --group N\` runs one again`,
  ];
  for (const group of groups) {
    lines.push(
      `  ${group.index}. ${plural(group.count, 'task')}, ${causeOf(group)}: ${group.signature || '(no output)'}`,
    );
    const example = group.example;
    lines.push(
      `     e.g. ${example.task} [${example.phase}] ${example.command}`,
      ...(example.line ? [`     | ${example.line}`] : []),
    );
  }
  return `${lines.join('\n')}\n`;
}
