// Running one task: the launcher, slot logs, OOM, timeouts, one slot pool (the worker and the
// local pool alike). Other rooms import from here, by name.
export { type SlotOutcome, SlotPool, type SlotPoolOptions } from './slotPool.js';
