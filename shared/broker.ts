import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import amqp, { type ChannelModel, type RecoveringChannelModel } from 'amqplib';
import { formatDuration, MINUTE, SECOND } from './duration.js';
import { describeSystemError, InfraError, WarrenError } from './errors.js';
import type { Logger } from './logger.js';

/** How to reach the broker and how hard to try. */
export interface BrokerOptions {
  /** `amqp://` or `amqps://` URL, credentials included. */
  readonly url: string;
  /** CA certificate file (PEM) for `amqps://`. */
  readonly caFile?: string | undefined;
  /** Seconds between heartbeats; never 0 (disabled). */
  readonly heartbeatSeconds: number;
  /** How long to keep trying to connect at start before giving up, in ms. */
  readonly connectTimeoutMs: number;
  /** How long to keep trying to reconnect after losing the broker before giving up, in ms. */
  readonly reconnectTimeoutMs: number;
  /** Shown to the broker (and in its management UI) as the connection's name. */
  readonly name: string;
}

/** The URL with its password replaced, for logs and error messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return 'the broker URL (unparseable)';
  }
}

/** `host:port` of a broker URL, for messages. */
export function brokerAddress(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || (parsed.protocol === 'amqps:' ? '5671' : '5672')}`;
  } catch {
    return 'the broker';
  }
}

/** Why a broker cannot be reached, in a few words, when the socket says (else undefined). */
function unreachable(error: unknown): string | undefined {
  switch ((error as NodeJS.ErrnoException | undefined)?.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unknown host';
    case 'ETIMEDOUT':
      return 'timed out';
    default:
      return undefined;
  }
}

/** A delay for people, short: `200ms`, `1.6s`, `30s`, `5m00s`. */
function briefly(ms: number): string {
  if (ms < SECOND) return `${Math.round(ms)}ms`;
  if (ms < MINUTE) return `${Number((ms / SECOND).toFixed(1))}s`;
  return formatDuration(ms);
}

/** Turns a connection failure into one line that says what to check. */
export function describeConnectError(error: unknown, url: string): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = brokerAddress(url);
  const why = unreachable(error);
  let user = 'guest';
  let vhost = '/';
  try {
    const parsed = new URL(url);
    user = decodeURIComponent(parsed.username) || 'guest';
    vhost = decodeURIComponent(parsed.pathname.slice(1)) || '/';
  } catch {
    // keep the defaults
  }
  if (/ACCESS.REFUSED/.test(message))
    return `the broker at ${where} refused the credentials of user \`${user}\``;
  if (/ConnectionClose|NOT_ALLOWED|vhost/i.test(message)) {
    return `the broker at ${where} refused vhost \`${vhost}\` to user \`${user}\` (no such vhost, or no permissions on it)`;
  }
  if (why) return `cannot reach the broker at ${where}: ${why}`;
  if (/certificate|self.signed|CERT_|SSL|TLS/i.test(`${message} ${code ?? ''}`)) {
    return `TLS handshake with the broker at ${where} failed: ${message} (check --ca-file / WARREN_CA_FILE)`;
  }
  return `cannot connect to the broker at ${where}: ${message}`;
}

/** Errors retrying cannot fix: wrong credentials, a vhost without access, a bad certificate. */
function isPermanent(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /ACCESS.REFUSED|ConnectionClose|NOT_ALLOWED|certificate|CERT_|self.signed/i.test(message);
}

/**
 * Makes the frames a connection writes in one event-loop turn leave in one `writev`.
 *
 * amqplib's multiplexer writes every frame with a `socket.write` of its own: with `noDelay`,
 * one syscall and one packet per frame, which the broker then reads one at a time. A worker
 * sends a result and an ack per task, and a tasker publishes tasks and acks results in bursts
 * (for 2,000 short tasks: 5,250 socket writes from the tasker, 1,660 once corked). The socket
 * is corked at the first write of a turn and uncorked on the next tick: nothing waits for a
 * timer, and a write's backpressure (`false` past the high-water mark, then `drain`) holds.
 * Reaches into amqplib's connection for its socket; without one (another version), a no-op.
 */
export function coalesceWrites(model: ChannelModel): void {
  const socket = (model as unknown as { connection?: { stream?: unknown } }).connection?.stream;
  if (!(socket instanceof Writable)) return;
  const write = socket.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = function (this: Writable, ...args: Parameters<Writable['write']>) {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return write.apply(this, args);
  } as Writable['write'];
}

/** Called after every (re)connection, in order, to declare topology and open channels. */
export type OnConnect = (model: ChannelModel) => Promise<void>;

/**
 * One connection to RabbitMQ that recovers by itself (amqplib's opt-in recovery): heartbeats
 * on, reconnects with backoff, runs the `onConnect` hooks again after each reconnect. A broker
 * that cannot be reached within `connectTimeoutMs` at start, or again within
 * `reconnectTimeoutMs` after a loss, is an InfraError (exit 3); so are wrong credentials, at once.
 * Connecting says so at once, and each retry as it is scheduled. A WarrenError from a hook
 * (an InputError: a worker name in use, say) ends it as it is.
 */
export class Broker {
  private failure: WarrenError | undefined;
  private downSince: number | undefined;
  private onFailure: ((error: WarrenError) => void) | undefined;

  private constructor(
    private readonly model: RecoveringChannelModel,
    readonly options: BrokerOptions,
  ) {}

  /** Connects; hooks run now and after every reconnect. */
  static async connect(options: BrokerOptions, log: Logger, hooks: OnConnect[]): Promise<Broker> {
    const url = withHeartbeat(options.url, options.heartbeatSeconds);
    const started = Date.now();
    let connected = false;
    let lastError: unknown;
    let broker: Broker | undefined;
    // No Nagle: a task's result and its ack are small writes that must go out at once.
    const socket: amqp.SocketOptions = {
      noDelay: true,
      clientProperties: { connection_name: options.name },
    };
    if (options.caFile) {
      try {
        socket.ca = [readFileSync(options.caFile)];
      } catch (error) {
        throw new InfraError(
          'CA_UNREADABLE',
          `cannot read CA file \`${options.caFile}\`: ${describeSystemError(error)}`,
        );
      }
    }
    const where = brokerAddress(options.url);
    // On a terminal, at once (a person waits for it); in a container's log the retries below,
    // which come only when there is something to wait for, say enough.
    if (process.stderr.isTTY) log.info(`connecting to the broker at ${where}`);
    const model = await amqp.connect(url, {
      ...socket,
      recovery: {
        waitForConnect: false,
        calculateDelay: (attempt) => Math.min(100 * 2 ** (attempt - 1), 5000),
        setup: async (connection: ChannelModel) => {
          coalesceWrites(connection);
          for (const hook of hooks) await hook(connection);
        },
      },
    });
    broker = new Broker(model, options);
    const giveUp = (error: unknown) => {
      const failure =
        error instanceof WarrenError
          ? error
          : new InfraError('BROKER_UNREACHABLE', describeConnectError(error, options.url), {
              cause: error,
            });
      broker?.fail(failure);
      void model.close().catch(() => {});
    };
    model.on('connect-failed', (error: Error) => {
      lastError = error;
      // Our own hooks throw a WarrenError for what retrying cannot fix (a queue declared with
      // other arguments, a worker name in use); the broker refuses wrong credentials for good.
      if (error instanceof WarrenError || isPermanent(error)) giveUp(error);
    });
    model.on('reconnect-scheduled', ({ delay, error }: { delay: number; error: Error }) => {
      lastError = error;
      const limit = connected ? options.reconnectTimeoutMs : options.connectTimeoutMs;
      const since = connected ? (broker?.downSince ?? Date.now()) : started;
      if (broker?.failure) return;
      if (Date.now() + delay - since > limit) giveUp(error);
      else if (connected)
        log.warn(`broker connection lost (${error.message}); reconnecting in ${delay}ms`);
      else {
        log.warn(
          `cannot reach the broker at ${where} (${unreachable(error) ?? error.message}); retrying in ${briefly(delay)}, giving up after ${briefly(limit)}`,
        );
      }
    });
    model.on('disconnect', (error: Error) => {
      if (broker) broker.downSince ??= Date.now();
      log.warn(`lost the broker at ${where}: ${error.message}`);
    });
    model.on('connect', () => {
      if (connected) log.info(`reconnected to the broker at ${where}`);
      connected = true;
      if (broker) broker.downSince = undefined;
    });
    model.on('error', (error: Error) => log.debug({ err: error }, 'broker connection error'));
    model.on('blocked', (reason: string) => log.warn(`the broker blocked publishing: ${reason}`));
    try {
      await model.waitForConnect();
    } catch (error) {
      throw (
        broker.failure ??
        new InfraError(
          'BROKER_UNREACHABLE',
          describeConnectError(lastError ?? error, options.url),
          { cause: error },
        )
      );
    }
    return broker;
  }

  /** A plain channel on the current connection (waits while reconnecting). */
  channel(): Promise<amqp.Channel> {
    return this.model.createChannel();
  }

  /** Hears when recovery gives up for good. */
  onGiveUp(handler: (error: WarrenError) => void): void {
    this.onFailure = handler;
    if (this.failure) handler(this.failure);
  }

  async close(): Promise<void> {
    await this.model.close().catch(() => {});
  }

  private fail(error: WarrenError): void {
    if (this.failure) return;
    this.failure = error;
    this.onFailure?.(error);
  }
}

function withHeartbeat(url: string, seconds: number): string {
  try {
    const parsed = new URL(url);
    if (!parsed.searchParams.has('heartbeat') || parsed.searchParams.get('heartbeat') === '0') {
      parsed.searchParams.set('heartbeat', String(seconds));
    }
    return parsed.toString();
  } catch {
    throw new InfraError(
      'BAD_BROKER_URL',
      `invalid broker URL ${redactUrl(url)}: expected amqp://user:pass@host:port/vhost`,
    );
  }
}
