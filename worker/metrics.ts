import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { TaskResult } from '../shared/protocol.js';

/**
 * A worker's Prometheus metrics (`--metrics-port`, `GET /metrics`): tasks by outcome and
 * failure class, task durations, busy and total slots, uploads; plus Node's process metrics.
 * Labels stay few (no run, task or phase labels): a long study must not explode the series.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly tasks: Counter<'outcome' | 'class'>;
  private readonly duration: Histogram<'outcome'>;
  private readonly uploads: Counter;
  private readonly uploadBytes: Counter;
  private readonly uploadSeconds: Histogram;

  constructor(slots: number, busy: () => number, worker: string) {
    this.registry.setDefaultLabels({ worker });
    collectDefaultMetrics({ register: this.registry, prefix: 'warren_worker_' });
    this.tasks = new Counter({
      name: 'warren_tasks_total',
      help: 'Attempts this worker finished, by outcome (succeeded, failed, cancelled) and failure class',
      labelNames: ['outcome', 'class'],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: 'warren_task_duration_seconds',
      help: 'How long attempts ran, uploads included, by outcome',
      labelNames: ['outcome'],
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200],
      registers: [this.registry],
    });
    new Gauge({
      name: 'warren_slots',
      help: 'Task slots of this worker (--concurrency)',
      registers: [this.registry],
      collect() {
        this.set(slots);
      },
    });
    new Gauge({
      name: 'warren_slots_busy',
      help: 'Slots running a task now',
      registers: [this.registry],
      collect() {
        this.set(busy());
      },
    });
    this.uploads = new Counter({
      name: 'warren_uploads_total',
      help: 'Objects uploaded to S3',
      registers: [this.registry],
    });
    this.uploadBytes = new Counter({
      name: 'warren_upload_bytes_total',
      help: 'Bytes uploaded to S3',
      registers: [this.registry],
    });
    this.uploadSeconds = new Histogram({
      name: 'warren_upload_duration_seconds',
      help: 'Time spent uploading one attempt’s outputs',
      buckets: [0.05, 0.25, 1, 5, 15, 60, 300],
      registers: [this.registry],
    });
  }

  /** Counts an attempt this worker finished. */
  ended(result: TaskResult): void {
    this.tasks.inc({ outcome: result.state, class: result.failure ?? '' });
    const seconds = (Date.parse(result.finishedAt) - Date.parse(result.startedAt)) / 1000;
    if (Number.isFinite(seconds) && seconds >= 0)
      this.duration.observe({ outcome: result.state }, seconds);
    for (const object of result.uploaded ?? []) {
      this.uploads.inc();
      this.uploadBytes.inc(object.size);
    }
    if (result.uploadMs !== undefined) this.uploadSeconds.observe(result.uploadMs / 1000);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
