import { readFileSync } from 'node:fs';
import { SECOND } from '../shared/duration.js';
import { statePaths } from '../shared/statePaths.js';

/** A run this worker could not see is looked for again after this long (a volume mounted late). */
const LOOK_AGAIN = 10 * SECOND;
/** Runs remembered; past this the oldest is forgotten (and looked at again when it comes). */
const REMEMBERED = 1000;
/** The first back-off of a worker that sees only runs it cannot see, doubled each time... */
const FIRST_BACK_OFF = 2 * SECOND;
/** ... up to this. */
const LAST_BACK_OFF = 60 * SECOND;

/** What this worker saw of a run's stamp in its state dir, and when it looked. */
interface Sighting {
  readonly stamp: string | undefined;
  readonly at: number;
}

/**
 * Which runs this worker can see in its state dir: those whose stamp file
 * (`runs/<run>/stamp`) holds the stamp their tasks carry. A worker that cannot see a run does
 * not share the run's working directory (it was started in another directory, or without the
 * volume): running its tasks would run them in the wrong place. One read of a small file per
 * run, remembered; a run not seen is looked for again after 10 s, when its next delivery comes.
 *
 * It also keeps the worker's back-off while it meets only runs it cannot see: 2 s, doubling up
 * to a minute, back to the start when a delivery of a run it can see comes.
 */
export class RunSight {
  private readonly runs = new Map<string, Sighting>();
  /** Runs said to be out of sight (said once each, until seen). */
  private readonly said = new Set<string>();
  private backOff = 0;
  /** When the current back-off ends (ms since the epoch). */
  private until = 0;

  constructor(private readonly stateDir: string) {}

  /** Whether the run of a task stamped `stamp` is in this worker's state dir. */
  sees(run: string, stamp: string): boolean {
    const now = Date.now();
    let sighting = this.runs.get(run);
    if (!sighting || (sighting.stamp !== stamp && now - sighting.at >= LOOK_AGAIN)) {
      sighting = { stamp: this.read(run), at: now };
      this.runs.delete(run);
      this.runs.set(run, sighting);
      if (this.runs.size > REMEMBERED) {
        const oldest = this.runs.keys().next().value;
        if (oldest !== undefined) this.runs.delete(oldest);
      }
    }
    return sighting.stamp === stamp;
  }

  /** What the worker found in the run's stamp file, for people: `no stamp` or `another stamp`. */
  found(run: string): string {
    return this.runs.get(run)?.stamp === undefined ? 'no stamp' : 'another stamp';
  }

  /** The first time since it was last seen that `run` is out of sight: to say so, once. */
  firstMiss(run: string): boolean {
    if (this.said.has(run)) return false;
    this.said.add(run);
    if (this.said.size > REMEMBERED) {
      const oldest = this.said.values().next().value;
      if (oldest !== undefined) this.said.delete(oldest);
    }
    return true;
  }

  /** `run` is in sight now: true when it was said to be out of sight before. */
  seen(run: string): boolean {
    return this.said.delete(run);
  }

  /**
   * A delivery of a run out of sight was given back: how long to take none, in ms. Longer
   * only once the last back-off is over (the deliveries held when it began count once).
   */
  missed(): number {
    const now = Date.now();
    if (now < this.until) return this.until - now;
    this.backOff = Math.min(LAST_BACK_OFF, this.backOff === 0 ? FIRST_BACK_OFF : this.backOff * 2);
    this.until = now + this.backOff;
    return this.backOff;
  }

  /** A delivery the worker can run came: no back-off next time. */
  hit(): void {
    this.backOff = 0;
  }

  private read(run: string): string | undefined {
    try {
      return readFileSync(statePaths.stamp(this.stateDir, run), 'utf8').trim() || undefined;
    } catch {
      // Missing, or unreadable: either way the run's stamp is not here to see.
      return undefined;
    }
  }
}
