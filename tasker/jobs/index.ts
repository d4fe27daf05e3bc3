// Jobs files, rules, sweeps and plans: what to run. Other rooms import from here, by name.
export { checkReadable } from './jobsFile.js';
export type { PhasePlan } from './phasePlan.js';
export { phaseNameOf, planOnce, planRun, planSweep, singlePhase, splitToParts } from './plan.js';
export { checkPhaseName, type PhaseKind, type RuleSet, resolveRules } from './rules.js';
export { readSpool, type SpooledTask, SpoolReader } from './spool.js';
export type { SweepSource } from './sweep.js';
