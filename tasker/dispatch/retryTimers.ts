/** Calls back when a task's retry is due: `attempt` of task `id`, which runs `command`. */
export type RetryDue = (id: string, command: string, attempt: number) => void;

/** The retries a phase waits to send, one timer per task. */
export class RetryTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly due: RetryDue) {}

  /** Sends `attempt` of task `id` in `delayMs` (replacing a retry of it already waiting). */
  schedule(id: string, command: string, attempt: number, delayMs: number): void {
    clearTimeout(this.timers.get(id));
    this.timers.set(id, setTimeout(this.fire, delayMs, id, command, attempt));
  }

  /** Cancels every retry still waiting; returns the ids of their tasks. */
  cancel(): string[] {
    const ids = [...this.timers.keys()];
    this.close();
    return ids;
  }

  close(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private readonly fire = (id: string, command: string, attempt: number): void => {
    this.timers.delete(id);
    this.due(id, command, attempt);
  };
}
