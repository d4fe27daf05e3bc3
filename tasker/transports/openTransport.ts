import type { Config } from '../../shared/config.js';
import type { Logger } from '../../shared/logger.js';
import { LocalPool } from './localPool.js';
import type { Transport } from './transport.js';

/** The settings a transport is made from. */
export type TransportSettings = Pick<
  Config,
  | 'broker'
  | 'local'
  | 'queue'
  | 'deliveryLimit'
  | 'publishWindow'
  | 'signingKey'
  | 'slots'
  | 'workdir'
  | 'stateDir'
  | 'killGraceMs'
  | 'taskEnv'
  | 's3'
>;

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
export function usesBroker(settings: TransportSettings): boolean {
  return settings.broker !== undefined && !settings.local;
}

/**
 * Opens the transport of a run's parallel phases: RabbitMQ when a broker is configured and
 * `--local` is not given, else a local pool of `slots` slots. The RabbitMQ transport is loaded
 * only then: a local run's start does not pay for amqplib and the message schemas. Connects
 * at once: an unreachable broker is an InfraError (exit 3) before anything is recorded.
 */
export async function openTransport(
  settings: TransportSettings,
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
      window: settings.publishWindow,
      log: options.log,
      signingKey: settings.signingKey,
      onCancel: options.onCancel,
      leaveResults: options.leaveResults,
      purpose: options.purpose,
    });
    return { transport, why: 'broker configured' };
  }
  return {
    // Nothing runs on a pool opened for control: it needs no slots.
    transport: localPool(settings, options.log, {
      slots: options.purpose === 'control' ? 0 : settings.slots,
      prefix: 'local',
    }),
    why: settings.local ? '--local' : 'no broker configured',
  };
}

/** A local pool of slots named `<prefix>-<n>` (the tasker's own, for serial steps, is `tasker-1`). */
export function localPool(
  settings: TransportSettings,
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
