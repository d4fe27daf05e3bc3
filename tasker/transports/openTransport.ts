import type { Logger } from '../../shared/logger.js';
import type { BrokerCommandConfig, RunConfig } from '../config.js';
import { LocalPool } from './localPool.js';
import type { Transport } from './transport.js';

/** How a command reaches the broker (what `tasker cancel` and `collect` read). */
export type BrokerSettings = Pick<
  BrokerCommandConfig,
  'broker' | 'queue' | 'deliveryLimit' | 'publishWindow' | 'batchSize'
> & {
  /** The longest task: the task queues' `x-consumer-timeout` (see the tasker's config). */
  readonly consumerTimeoutMs?: number;
  /** Tasks are signed with it (`tasker run`), dead letters checked against it. */
  readonly signingKey?: string | undefined;
  /** `--local`: run on a local pool even with a broker configured. */
  readonly local?: boolean;
  /** Size classes (`--classes`): their queues are declared, and tasks published to them. */
  readonly classes?: readonly string[];
};

/** What a local pool of slots is made from (what `tasker run`, `send` and `once` read). */
export type PoolSettings = Pick<
  RunConfig,
  'slots' | 'workdir' | 'stateDir' | 'killGraceMs' | 'taskEnv' | 's3'
>;

/** The settings a run's transports are made from. */
export type TransportSettings = BrokerSettings & PoolSettings;

/** What a command opens a transport for. */
export interface OpenTransportOptions {
  readonly run: string;
  readonly log: Logger;
  /** Shown to the broker as the connection's name: `warren tasker <run>`. */
  readonly name: string;
  /** Hears a `tasker cancel` of the run that comes through the transport (a broker's). */
  readonly onCancel?: () => void;
  /** Leave results for `tasker collect` (`send --no-wait`); see RabbitTransportOptions. */
  readonly leaveResults?: boolean;
  /**
   * The run's stamp in the state dir, sent with each task so that a worker that does not share
   * the run's working directory gives its tasks back (none: tasks go unstamped).
   */
  readonly stamp?: () => string | undefined;
  /**
   * `run` (the default) to run tasks and read their results, `control` for `tasker cancel`
   * (connects and declares nothing).
   */
  readonly purpose?: 'run' | 'control';
}

/** A transport, and why it is the one. */
export interface OpenedTransport {
  readonly transport: Transport;
  /** Why this mode: `no broker configured`, `--local`, `broker configured`. */
  readonly why: string;
}

/** Whether the settings send tasks through a broker (else a local pool runs them). */
export function usesBroker(settings: BrokerSettings): boolean {
  return settings.broker !== undefined && !settings.local;
}

/**
 * Opens the transport of a run's parallel phases: RabbitMQ when a broker is configured and
 * `--local` is not given, else a local pool of `slots` slots. The RabbitMQ transport is loaded
 * only then: a local run's start does not pay for amqplib and the message schemas. Connects
 * at once: an unreachable broker is an InfraError (exit 3) before anything is recorded.
 * Commands that read no pool settings (`cancel`, `collect`) open one only with a broker.
 */
export async function openTransport(
  settings: BrokerSettings | TransportSettings,
  options: OpenTransportOptions,
): Promise<OpenedTransport> {
  const broker = settings.broker;
  if (broker && !settings.local) {
    const { RabbitTransport } = await import('./rabbitTransport.js');
    const transport = await RabbitTransport.open({
      broker: { ...broker, name: options.name },
      run: options.run,
      queue: settings.queue,
      deliveryLimit: settings.deliveryLimit,
      consumerTimeoutMs: settings.consumerTimeoutMs,
      window: settings.publishWindow,
      batchSize: settings.batchSize,
      log: options.log,
      signingKey: settings.signingKey,
      onCancel: options.onCancel,
      leaveResults: options.leaveResults,
      purpose: options.purpose,
      stamp: options.stamp,
      workdir: 'workdir' in settings ? settings.workdir : undefined,
      classes: settings.classes ?? [],
    });
    return { transport, why: 'broker configured' };
  }
  if (!('slots' in settings)) throw new Error('openTransport: a local pool needs pool settings');
  return {
    transport: localPool(settings, options.log, { slots: settings.slots, prefix: 'local' }),
    why: settings.local ? '--local' : 'no broker configured',
  };
}

/** A local pool of slots named `<prefix>-<n>` (the tasker's own, for serial steps, is `tasker-1`). */
export function localPool(
  settings: PoolSettings,
  log: Logger,
  slots: { readonly slots: number; readonly prefix: string },
): LocalPool {
  return new LocalPool({
    ...slots,
    workdir: settings.workdir,
    stateDir: settings.stateDir,
    killGraceMs: settings.killGraceMs,
    env: settings.taskEnv,
    onShellError: (line) => log.warn(`task shell: ${line}`),
    s3: settings.s3,
  });
}
