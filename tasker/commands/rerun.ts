// `tasker rerun`: the failed tasks of one cause (a group of `tasker status --failed`) run again,
// as a new session of the same run, phase by phase, and nothing else.
import { InputError } from '../../shared/errors.js';
import { statePaths } from '../../shared/statePaths.js';
import type { TaskerFlags } from '../config.js';
import type { PhasePlan } from '../jobs/index.js';
import {
  type LedgerVisitor,
  latestRun,
  type PlannedPhase,
  plannedPhasesVisitor,
} from '../ledger/index.js';
import {
  describeFilter,
  type GroupFilter,
  groupFailures,
  runStatus,
  selectGroups,
} from '../observe/index.js';
import { setUp } from './run.js';
import { runPhases } from './runPhases.js';

/** The flags of `tasker rerun` besides those of `tasker run`. */
export interface RerunFlags {
  readonly group?: string;
  readonly class?: string;
  readonly signature?: string;
}

function filterOf(flags: RerunFlags): GroupFilter {
  if (flags.group === undefined && flags.class === undefined && flags.signature === undefined) {
    throw new InputError(
      'NO_FILTER',
      'say which failed tasks to run again: --group N (from `tasker status --failed`), --class C or --signature TEXT',
    );
  }
  let group: number | undefined;
  if (flags.group !== undefined) {
    group = /^\d+$/.test(flags.group) ? Number(flags.group) : Number.NaN;
    if (!(group >= 1))
      throw new InputError(
        'BAD_GROUP',
        `--group must be a group number from 1, not \`${flags.group}\``,
      );
  }
  if (flags.signature !== undefined && flags.signature.trim() === '')
    throw new InputError('BAD_SIGNATURE', '--signature must not be empty');
  return {
    ...(group !== undefined ? { group } : {}),
    ...(flags.class !== undefined ? { class: flags.class } : {}),
    ...(flags.signature !== undefined ? { signature: flags.signature } : {}),
  };
}

/**
 * A visitor that finds the attempts a run published or started and that have no end yet: on a
 * broker, still out (an interrupted session's), and their results may yet come.
 */
function attemptsOut(out: Map<string, number>): LedgerVisitor {
  const sent = (task: string, attempt: number) => {
    if (attempt > (out.get(task) ?? 0)) out.set(task, attempt);
  };
  return {
    queued: (record) => {
      for (const [task, attempt] of record.tasks) sent(task, attempt);
    },
    start: (record) => sent(record.task, record.attempt),
    end: (record) => {
      if (record.attempt >= (out.get(record.task) ?? Number.POSITIVE_INFINITY))
        out.delete(record.task);
    },
  };
}

const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;

/**
 * `tasker rerun --group N` (or `--class`, `--signature`): the failed tasks of the chosen groups
 * run again in a new session of their run, each phase's tasks after the previous phase's (the
 * barrier, among the chosen tasks), with new attempts in the run's ledger. Nothing else runs:
 * not other failed tasks, not later phases. The run ends succeeded only when every one of its
 * tasks has.
 */
export async function rerunCommand(flags: TaskerFlags & RerunFlags): Promise<number> {
  const filter = filterOf(flags);
  const { config: settings, log } = await setUp(flags);
  const run = settings.runId ?? (await latestRun(settings.stateDir));
  const config = { ...settings, runId: run };
  const planned = new Map<string, PlannedPhase>();
  const out = new Map<string, number>();
  const status = await runStatus(config.stateDir, run, [
    plannedPhasesVisitor(planned),
    attemptsOut(out),
  ]);
  if (status.state === 'running')
    throw new InputError('RUN_RUNNING', `run ${run} is running; rerun its tasks once it has ended`);
  if (status.state === 'cancelled')
    throw new InputError(
      'RUN_CANCELLED',
      `run ${run} was cancelled; its tasks do not run again: start a new run`,
    );
  if (status.state === 'waiting')
    throw new InputError(
      'RUN_WAITING',
      `run ${run} has tasks out on the broker (\`send --no-wait\`); \`tasker collect --run-id ${run}\` them first`,
    );
  // Their results would come to a session that does not wait for them.
  if (status.mode === 'rabbitmq' && out.size > 0)
    throw new InputError(
      'RUN_TASKS_OUT',
      `run ${run} has ${plural(out.size, 'task')} still out on the broker from an interrupted session; resume the run (or \`tasker collect --run-id ${run}\`) first`,
    );
  const chosen = selectGroups(groupFailures(status.tasks), filter, run);
  const ids = new Set(chosen.flatMap((group) => group.tasks));
  const byPhase = new Map<string, Set<string>>();
  for (const task of status.tasks) {
    if (!ids.has(task.id)) continue;
    const set = byPhase.get(task.phase) ?? new Set<string>();
    set.add(task.id);
    byPhase.set(task.phase, set);
  }
  // In the run's phase order, each from its phase file.
  const plans: PhasePlan[] = status.phases.flatMap((phase) => {
    const only = byPhase.get(phase.name);
    if (!only) return [];
    const total = planned.get(phase.name)?.total ?? phase.total;
    const spool = statePaths.spool(config.stateDir, run, phase.name);
    return [{ name: phase.name, kind: phase.kind, total, spool, only }];
  });
  const others = status.tasks.filter(
    (task) => task.state !== 'succeeded' && !ids.has(task.id),
  ).length;
  // Phases after the first one rerun that already ran, and are not rerun: they stay as they are.
  const first = status.phases.findIndex((phase) => byPhase.has(phase.name));
  const after = status.phases
    .slice(first + 1)
    .filter((phase) => !byPhase.has(phase.name) && phase.succeeded + phase.failed > 0)
    .map((phase) => phase.name);
  const groups = chosen.map((group) => group.index).join(', ');
  log.info(
    { run },
    `rerunning ${plural(ids.size, 'failed task')} of run ${run} (${chosen.length === 1 ? 'group' : 'groups'} ${groups}) in ${plural(plans.length, 'phase')}: ${plans.map((plan) => plan.name).join(', ')}`,
  );
  if (after.length > 0)
    log.warn(
      { run },
      `later phases that already ran (${after.join(', ')}) do not run again: if they used what these tasks make, run them in a new run`,
    );
  return runPhases(config, log, {
    command: `rerun ${describeFilter(filter)}`,
    plan: async () => plans,
    othersUnfinished: others,
  });
}
