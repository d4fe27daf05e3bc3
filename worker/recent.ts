/** Results published recently, so a redelivery of one of them is acknowledged without running it. */
const REMEMBERED = 10_000;

/** A bounded set: past REMEMBERED entries, the oldest go first. */
class BoundedSet {
  private readonly keys = new Set<string>();

  add(key: string): void {
    this.keys.add(key);
    if (this.keys.size > REMEMBERED) {
      const oldest = this.keys.values().next().value;
      if (oldest !== undefined) this.keys.delete(oldest);
    }
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }
}

/**
 * What a worker remembers to drop deliveries it must not run: attempts whose result it
 * published (the broker may deliver them again: at-least-once) and runs that were cancelled.
 * Bounded: a worker that lives for months forgets the oldest; a duplicate that gets through
 * runs once more and its result is dropped by the tasker (task id + attempt).
 */
export class Recent {
  private readonly results = new BoundedSet();
  private readonly cancelledRuns = new BoundedSet();

  /** The result of this attempt is in (published by this worker). */
  resultIn(task: { readonly task: string; readonly attempt: number }): boolean {
    return this.results.has(`${task.task}.${task.attempt}`);
  }

  rememberResult(task: { readonly task: string; readonly attempt: number }): void {
    this.results.add(`${task.task}.${task.attempt}`);
  }

  cancelled(run: string): boolean {
    return this.cancelledRuns.has(run);
  }

  rememberCancel(run: string): void {
    this.cancelledRuns.add(run);
  }
}
