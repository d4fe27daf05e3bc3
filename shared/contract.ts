/**
 * The constants of the message contract. The schemas (schemas.ts) are built from them and
 * protocol.ts re-exports them, so that neither of those two modules imports the other.
 */

/** The version every message carries in `v`; a peer refuses a message of another version. */
export const PROTOCOL_VERSION = 1;

/** Why an attempt failed. */
export const FAILURE_CLASSES = [
  'exit', // the command exited non-zero
  'signal', // the command was killed by a signal nobody in Warren sent
  'timeout', // Warren killed it after --timeout
  'oom', // the kernel's OOM killer killed it
  'upload', // the command succeeded but its outputs could not be uploaded
  'lost', // the worker (or its slot) died while running it
  'rejected', // the message was refused (bad shape, bad signature)
  'infra', // the worker could not run it (its disk or state directory failed); retried
  // The tasker could not read the attempt's result (not JSON, a field of the wrong type, a
  // required field missing) but could tell which attempt it was of: a failure of that attempt,
  // retried, rather than a dropped message that leaves the barrier waiting.
  'unreadable',
] as const;
/** A failure class this Warren knows. */
export type FailureClass = (typeof FAILURE_CLASSES)[number];

/**
 * The failure class of a result as read: a class this Warren knows, or one a newer or foreign
 * worker sent (kept as given in the ledger; retried as `exit`). The intersection keeps the
 * known names visible to the editor instead of collapsing the union into `string`.
 */
export type AnyFailureClass = FailureClass | (string & Record<never, never>);

const KNOWN_FAILURES: ReadonlySet<string> = new Set(FAILURE_CLASSES);

/** Whether a failure class is one this Warren knows. */
export function isKnownFailure(failure: string): failure is FailureClass {
  return KNOWN_FAILURES.has(failure);
}

/**
 * A run id: 1 to 64 letters, digits, `.`, `_` or `-`, the first a letter or digit; safe in file
 * and queue names.
 */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
