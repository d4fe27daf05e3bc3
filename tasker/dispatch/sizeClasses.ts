import type { TaskResult } from '../../shared/protocol.js';
import { DEFAULT_CLASS } from '../../shared/topology.js';

/**
 * What the phase does with a failed attempt, as far as size classes go: `up` publishes the task
 * again on the next class (the OOM killer killed it, and a larger class exists), `last` marks an
 * OOM kill on the largest class (the retry policy decides, as for any failure, and the reason
 * says so), `none` leaves the attempt to the retry policy.
 */
export type ClassMove =
  | { readonly kind: 'up'; readonly to: number; readonly name: string }
  | { readonly kind: 'last'; readonly reason: string }
  | { readonly kind: 'none' };

/**
 * The run's size classes, smallest first (`--classes`), and the decisions made with them. A
 * task's class is an index into them, kept in the task table; 0 is `default`, the task queue.
 */
export class SizeClasses {
  constructor(readonly names: readonly string[]) {}

  get configured(): boolean {
    return this.names.length > 1;
  }

  /** The name of class `index` (`default` for 0, or with no classes). */
  nameOf(index: number): string {
    return this.names[index] ?? DEFAULT_CLASS;
  }

  /** What the message of an attempt on class `index` carries: nothing for `default`. */
  messageField(index: number): { readonly class?: string } {
    return index > 0 && this.configured ? { class: this.nameOf(index) } : {};
  }

  /** What a ledger record of an attempt on class `index` carries: its class, once configured. */
  recordField(index: number): { readonly class?: string } {
    return this.configured ? { class: this.nameOf(index) } : {};
  }

  /** Where a failed attempt on class `index` goes. */
  moveOf(result: TaskResult, index: number): ClassMove {
    if (result.state !== 'failed' || result.failure !== 'oom' || !this.configured)
      return { kind: 'none' };
    const to = index + 1;
    if (to < this.names.length) return { kind: 'up', to, name: this.nameOf(to) };
    return {
      kind: 'last',
      reason: `${result.reason ?? 'killed by the OOM killer'} on size class ${this.nameOf(index)}, the largest (--classes ${this.names.join(',')})`,
    };
  }
}

/** Said when a task the OOM killer killed fails for good and no size classes are configured. */
export const NO_CLASSES_HINT =
  'a bigger worker could run it: serve a larger size class (worker --class large) and list it (tasker --classes default,large), see docs/running.md';
