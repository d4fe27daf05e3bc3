// The run's ledger: records, writing, one replay, the task table, sessions and locks. Other rooms
// import from here, by name.
export { endRecordOf } from './endRecord.js';
export { LedgerWriter } from './ledger.js';
export { type PlannedPhase, plannedPhasesVisitor } from './plannedPhases.js';
export { type LedgerVisitor, replayLedger } from './replay.js';
export { isRunActive, lockOptions } from './runLock.js';
export type { RunMemory } from './runMemory.js';
export { latestRun, newRunId, openSession } from './session.js';
export { MAX_VANISHED, TaskState, type TaskTable } from './taskTable.js';
