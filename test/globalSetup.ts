import type { TestProject } from 'vitest/node';
import { brokerVersion, startTestBroker } from './helpers/broker.js';
import { startTestS3 } from './helpers/s3.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The broker integration tests share (fault tests start their own). */
    rabbitmqUrl: string;
    /** How to run `rabbitmqctl` against it; empty when unknown (a broker from RABBITMQ_URL). */
    rabbitmqCtl: string[];
    /** The S3-speaking server (s3rver) the tests share: create a bucket per test. */
    s3Endpoint: string;
  }
}

/** Starts the one broker ordinary integration tests share, and stops it at the end. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const broker = await startTestBroker();
  const version = await brokerVersion(broker.url);
  process.stderr.write(
    `integration tests use RabbitMQ ${version || '(version unknown)'} from ${broker.source}\n`,
  );
  project.provide('rabbitmqUrl', broker.url);
  project.provide('rabbitmqCtl', [...(broker.ctlCommand ?? [])]);
  const s3 = await startTestS3();
  project.provide('s3Endpoint', s3.endpoint);
  const started = Date.now();
  return async () => {
    process.stderr.write(
      `integration tests ran on RabbitMQ ${version || '(version unknown)'} (${broker.source}) in ${Math.round((Date.now() - started) / 1000)} s\n`,
    );
    await s3.stop();
    await broker.stop();
  };
}
