import type { TestProject } from 'vitest/node';
import { startTestBroker } from './helpers/broker.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The broker integration tests share (fault tests start their own). */
    rabbitmqUrl: string;
    /** How to run `rabbitmqctl` against it; empty when unknown (a broker from RABBITMQ_URL). */
    rabbitmqCtl: string[];
  }
}

/** Starts the one broker ordinary integration tests share, and stops it at the end. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const broker = await startTestBroker();
  process.stderr.write(`integration tests use RabbitMQ from ${broker.source}\n`);
  project.provide('rabbitmqUrl', broker.url);
  project.provide('rabbitmqCtl', [...(broker.ctlCommand ?? [])]);
  return () => broker.stop();
}
