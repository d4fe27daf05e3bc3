/** A delivery settled within this long counts toward short tasks. */
const SHORT_MS = 1000;
/** Short deliveries in a row after which a worker holds more. */
const SHORT_STREAK = 3;
/** A task running this long ends the holding of more. */
const LONG_MS = 2000;
/** A delivery none of whose tasks started in this long, with every slot busy, goes back. */
const GIVE_BACK_MS = 1000;
/** How often the running tasks are looked at. */
const TICK_MS = 250;

export interface HoldingOptions {
  /** Whether the worker decides what it holds (no `--prefetch` given). */
  readonly adaptive: boolean;
  /** Hold more deliveries than the slots, or only the slots. */
  readonly holdMore: (more: boolean) => void;
  /** When the longest-running task started (ms since the epoch), if any runs. */
  readonly oldestStart: () => number | undefined;
  /** Whether a delivery waited this long for a slot, with every slot busy. */
  readonly stuck: (waitedMs: number) => boolean;
  /**
   * Hands back the deliveries that waited this long for a slot, with every slot busy, held
   * beyond the slots (those of the consumer whose prefetch is the slots stay).
   */
  readonly giveBack: (waitedMs: number) => number;
}

/**
 * What a worker holds, decided from what it sees (no `--prefetch` given): its slots at first
 * and while tasks are long; a few deliveries more once three in a row settled within a second
 * (the next is at hand when a slot frees, with no broker round trip between); back to the slots
 * as soon as a task runs two seconds or a delivery waits a second for a slot, handing back the
 * deliveries held beyond the slots that cannot start soon.
 */
export class Holding {
  private more = false;
  private streak = 0;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: HoldingOptions) {
    if (!options.adaptive) return;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** A delivery settled `tookMs` after it came. */
  settled(tookMs: number): void {
    if (!this.options.adaptive) return;
    if (tookMs >= SHORT_MS) {
      this.streak = 0;
      return;
    }
    if (++this.streak >= SHORT_STREAK && !this.more) {
      this.more = true;
      this.options.holdMore(true);
    }
  }

  /**
   * A delivery came again: it may be a task that kills its worker, and whatever else this
   * worker holds when it dies counts a delivery toward its limit too. Hold only the slots.
   */
  redelivered(): void {
    this.streak = 0;
    if (!this.more) return;
    this.more = false;
    this.options.holdMore(false);
  }

  close(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const oldest = this.options.oldestStart();
    const long = oldest !== undefined && Date.now() - oldest >= LONG_MS;
    if (this.more && (long || this.options.stuck(GIVE_BACK_MS))) {
      this.more = false;
      this.streak = 0;
      this.options.holdMore(false);
    }
    // Only once nothing more is held: what is handed back must not come straight back.
    if (!this.more) this.options.giveBack(GIVE_BACK_MS);
  }
}
