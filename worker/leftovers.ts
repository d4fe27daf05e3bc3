import { failedResult } from '../shared/failedResult.js';
import type { Logger } from '../shared/logger.js';
import type { InflightMarkers } from './inflight.js';
import type { ResultPublisher } from './publisher.js';
import type { Recent } from './recent.js';

/**
 * Reports the attempts a previous life of this worker died in (its container killed with
 * them), from the in-flight markers it left: each is a failed (`lost`) result for its run.
 */
export async function reportLeftovers(
  markers: InflightMarkers,
  publisher: ResultPublisher,
  recent: Recent,
  log: Logger,
): Promise<void> {
  for (const { marker, path } of markers.leftovers()) {
    const now = new Date().toISOString();
    log.warn(
      { run: marker.run, task: marker.task },
      `task ${marker.task} (attempt ${marker.attempt}) was running when this worker's container died; reporting it lost`,
    );
    await publisher.result(
      failedResult(marker, {
        failure: 'lost',
        reason:
          "the worker's container died while running it (killed with its task, e.g. out of memory)",
        worker: marker.worker,
        host: marker.host,
        startedAt: marker.startedAt,
        finishedAt: now,
      }),
      marker.replyTo,
    );
    // Its delivery comes back from the broker; it is not run again.
    recent.rememberResult(marker);
    markers.remove(path);
  }
}
