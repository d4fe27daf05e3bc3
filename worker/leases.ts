import { hostname } from 'node:os';
import { PROTOCOL_VERSION } from '../shared/protocol.js';
import type { Lease } from '../shared/wire.js';

/** A run's first lease goes out once one of its deliveries has been with the worker this long. */
export const FIRST_LEASE_AFTER = 1000;

/** Where an attempt a worker has is: waiting for a free slot, or on one. */
export type LeaseState = 'held' | 'running';

/** What a lease needs to know of a delivery. */
export interface Leasable {
  readonly task: {
    readonly run: string;
    readonly task: string;
    readonly attempt: number;
    readonly replyTo: string;
  };
}

/** One run's lease: its attempts here, and whether it has been announced yet. */
interface RunLease<J> {
  readonly replyTo: string;
  readonly jobs: Map<J, { state: LeaseState; readonly since: number }>;
  /** `quiet` until its first lease (short tasks never get one), `leased` after. */
  stage: 'quiet' | 'leased';
  timer: NodeJS.Timeout | undefined;
}

export interface LeasesOptions<J> {
  /** The worker's name, in every lease. */
  readonly worker: string;
  /** Between renewals, in ms. */
  readonly intervalMs: number;
  /** Sends a lease to a run's results queue, without waiting (the next one renews it). */
  readonly send: (replyTo: string, lease: Lease) => void;
  /** Whether a job in this state is still the worker's (a held delivery of a lost channel is not). */
  readonly listed: (job: J, state: LeaseState) => boolean;
}

/**
 * A worker's leases: per run, one message listing every attempt of the run the worker holds or
 * runs, sent once a delivery of the run has been here for a second and renewed every lease
 * interval while any is. A run whose deliveries all end within the second costs no message.
 */
export class Leases<J extends Leasable> {
  private readonly runs = new Map<string, RunLease<J>>();
  private readonly host = hostname();

  constructor(private readonly options: LeasesOptions<J>) {}

  /** A delivery came (it waits for a slot, or takes one at once). */
  hold(job: J): void {
    const { run, replyTo } = job.task;
    let lease = this.runs.get(run);
    if (!lease) {
      lease = { replyTo, jobs: new Map(), stage: 'quiet', timer: undefined };
      this.runs.set(run, lease);
    }
    lease.jobs.set(job, { state: 'held', since: Date.now() });
    if (!lease.timer) this.schedule(run, lease);
  }

  /** A held delivery got its slot. */
  run(job: J): void {
    const entry = this.runs.get(job.task.run)?.jobs.get(job);
    if (entry) entry.state = 'running';
  }

  /** A delivery is settled (acknowledged, handed back or dropped): the lease lists it no more. */
  release(job: J): void {
    // A run left with nothing here keeps its timer, which forgets it when it fires: a stream of
    // short tasks costs no timer of its own per task.
    this.runs.get(job.task.run)?.jobs.delete(job);
  }

  /** Sends nothing more (the worker is stopping). */
  close(): void {
    for (const lease of this.runs.values()) clearTimeout(lease.timer);
    this.runs.clear();
  }

  private schedule(run: string, lease: RunLease<J>): void {
    let delay = this.options.intervalMs;
    if (lease.stage === 'quiet') {
      const oldest = Math.min(...[...lease.jobs.values()].map((entry) => entry.since));
      delay = Math.max(0, oldest + FIRST_LEASE_AFTER - Date.now());
    }
    lease.timer = setTimeout(() => this.renew(run), delay);
  }

  private renew(run: string): void {
    const lease = this.runs.get(run);
    if (!lease) return;
    if (lease.jobs.size === 0) {
      this.runs.delete(run);
      return;
    }
    const now = Date.now();
    // Timers may fire a little early: a few ms short of the second count as the second.
    const due = (since: number) => now - since >= FIRST_LEASE_AFTER - 10;
    if (lease.stage === 'quiet' && ![...lease.jobs.values()].some((entry) => due(entry.since))) {
      this.schedule(run, lease);
      return;
    }
    const tasks: [string, number, LeaseState][] = [];
    for (const [job, { state }] of lease.jobs) {
      if (this.options.listed(job, state)) tasks.push([job.task.task, job.task.attempt, state]);
    }
    if (tasks.length > 0) {
      this.options.send(lease.replyTo, {
        v: PROTOCOL_VERSION,
        run,
        worker: this.options.worker,
        host: this.host,
        at: new Date(now).toISOString(),
        intervalMs: this.options.intervalMs,
        tasks,
      });
    }
    lease.stage = 'leased';
    this.schedule(run, lease);
  }
}
