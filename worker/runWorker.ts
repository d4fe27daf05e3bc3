import { checkDirectory } from '../shared/dirs.js';
import { InfraError, InputError } from '../shared/errors.js';
import { createLogger } from '../shared/logger.js';
import { onShutdown } from '../shared/shutdown.js';
import { loadWorkerConfig, type WorkerFlags } from './config.js';
import { Worker } from './worker.js';

/**
 * The worker process: reads its configuration (refusing a bad setting before anything starts),
 * runs until drained, idle or stopped, and returns the exit code.
 */
export async function runWorker(flags: WorkerFlags): Promise<number> {
  const config = loadWorkerConfig(flags);
  checkDirectory(config.workdir, 'working directory');
  if (config.upload.length > 0 && !config.s3) {
    throw new InputError(
      'NO_BUCKET',
      '--upload needs a bucket: set S3_BUCKET (and S3_ENDPOINT_URL for a non-AWS server) or --bucket',
    );
  }
  const broker = config.broker;
  if (!broker) {
    throw new InfraError(
      'NO_BROKER',
      'the worker needs a broker: set RABBITMQ_URL (or RABBITMQ_HOST, _PORT, _USER, _PASS)',
    );
  }
  const log = await createLogger({
    level: config.logLevel,
    format: config.logFormat,
    bindings: { component: 'worker', worker: config.workerName },
  });
  const worker = new Worker({ ...config, broker }, log);
  const removeHandlers = onShutdown(log, () => worker.shutdown());
  const exitCode = await worker.run();
  removeHandlers();
  return exitCode;
}
