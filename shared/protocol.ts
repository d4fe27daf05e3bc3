import type { InferOutput } from 'valibot';
import type * as schemas from './schemas.js';

/**
 * The message contract between tasker and workers, and the shape of a task's outcome
 * everywhere else (ledger, status). Documented for other languages in docs/protocol.md; the
 * valibot schemas that validate it at the edge are in schemas.ts and the types here are
 * inferred from them. Only types come from there (erased when compiled): code that imports
 * this module does not load valibot. The constants both need are in contract.ts.
 */
export {
  type AnyFailureClass,
  FAILURE_CLASSES,
  type FailureClass,
  isKnownFailure,
  PROTOCOL_VERSION,
  RUN_ID_PATTERN,
} from './contract.js';

export type TaskMessage = InferOutput<typeof schemas.TaskMessage>;
export type LogSpan = InferOutput<typeof schemas.LogSpan>;
export type TaskResult = InferOutput<typeof schemas.TaskResult>;
/** An object a task's outputs were uploaded to, as its result and the ledger record it. */
export type UploadedObject = InferOutput<typeof schemas.UploadedObject>;
