// Phases, barriers, retries, spawned tasks: when to run it. Other rooms import from here, by name.
export { Dispatcher } from './dispatcher.js';
export type { PhaseProgress, PhaseSummary } from './phaseTally.js';
