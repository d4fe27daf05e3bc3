import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { brokerVersionOf } from '../shared/consumerTimeout.js';
import { IMAGE_4, nodeContainer, Podman } from './rabbitmqContainer.js';

const run = promisify(execFile);

/** A RabbitMQ the tests talk to, and how to be rid of it. */
export interface TestBroker {
  readonly url: string;
  /** Where it comes from: `RABBITMQ_URL`, `testcontainers` or `private node`. */
  readonly source: string;
  /** The command that runs `rabbitmqctl` against it, when known (not for `RABBITMQ_URL`). */
  readonly ctlCommand: readonly string[] | undefined;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function reachable(url: string, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    try {
      const connection = await amqp.connect(url);
      await connection.close();
      return true;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  return false;
}

/**
 * Which RabbitMQ private nodes run: Debian's `rabbitmq-server` on this machine (3.10 here), or
 * with `WARREN_TEST_BROKER=4` the 4.x image `scripts/broker4.sh` makes, run in podman on the
 * host network. The same `PrivateNode` starts, stops and kills either.
 */
export const TEST_BROKER_LINE = process.env.WARREN_TEST_BROKER === '4' ? '4' : 'debian';

/**
 * A RabbitMQ node of the test's own, on its own ports in a temp dir: fault tests can stop,
 * kill and restart it without touching anything else. Options go into its `rabbitmq.conf`.
 * Debian's `rabbitmq-server` script runs it (switching to the `rabbitmq` user), or, with
 * `WARREN_TEST_BROKER=4`, the same script of Debian trixie's 4.x in a podman container on the
 * host network, its temp dir mounted at the same path (and the directory of any file its
 * configuration names, read-only).
 */
export class PrivateNode implements TestBroker {
  readonly source: string;
  readonly url: string;
  readonly ctlCommand: readonly string[];
  private process: ReturnType<typeof spawn> | undefined;
  /** The podman container of a 4.x node (the same name across restarts), and podman. */
  private readonly container: string | undefined;
  private readonly podman: Podman | undefined;

  private constructor(
    readonly name: string,
    readonly port: number,
    private readonly distPort: number,
    readonly dir: string,
    private readonly mounts: readonly string[],
    private readonly advanced: boolean,
  ) {
    this.url = `amqp://guest:guest@127.0.0.1:${port}`;
    if (TEST_BROKER_LINE === '4') {
      this.container = `warren-rabbitmq-${process.pid}-${port}`;
      this.podman = new Podman(dir);
      this.source = `private node in podman (${IMAGE_4})`;
      this.ctlCommand = [...this.podman.command('exec', this.container), 'rabbitmqctl', '-n', name];
    } else {
      this.source = 'private node';
      this.ctlCommand = ['rabbitmqctl', '-n', name];
    }
  }

  static available(): boolean {
    if (TEST_BROKER_LINE === '4') return true;
    return (
      existsSync('/usr/sbin/rabbitmq-server') || existsSync('/usr/lib/rabbitmq/bin/rabbitmq-server')
    );
  }

  /**
   * Starts a node; `conf` lines are added to its rabbitmq.conf (e.g. `consumer_timeout = 60000`),
   * and `advanced`, an Erlang term, is its advanced.config (e.g.
   * `[{rabbit, [{channel_tick_interval, 1000}]}].`).
   */
  static async start(conf: readonly string[] = [], advanced?: string): Promise<PrivateNode> {
    const port = await freePort();
    let distPort = await freePort();
    while (distPort === port) distPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'warren-rabbit-'));
    // Files the configuration names (TLS certificates) must be seen inside a container too.
    const mounts = [
      ...new Set(
        conf.flatMap((line) => {
          const value = /=\s*(\/\S+)$/.exec(line)?.[1];
          return value ? [dirname(value)] : [];
        }),
      ),
    ];
    const node = new PrivateNode(
      `warren-test-${process.pid}-${port}@localhost`,
      port,
      distPort,
      dir,
      mounts,
      advanced !== undefined,
    );
    mkdirSync(join(dir, 'mnesia'));
    mkdirSync(join(dir, 'log'));
    writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
    writeFileSync(
      join(dir, 'rabbitmq.conf'),
      [`listeners.tcp.default = ${port}`, 'loopback_users = none', ...conf, ''].join('\n'),
    );
    if (advanced) writeFileSync(join(dir, 'advanced.config'), `${advanced}\n`);
    // The Debian script runs the node as `rabbitmq`: it must own the directories.
    await run('chown', ['-R', 'rabbitmq:rabbitmq', dir]).catch(() => {});
    await run('chmod', ['755', dir]).catch(() => {});
    await node.podman?.ensureImage();
    await node.boot();
    return node;
  }

  private environment(): Record<string, string> {
    const dir = this.dir;
    return {
      RABBITMQ_NODENAME: this.name,
      RABBITMQ_NODE_PORT: String(this.port),
      RABBITMQ_DIST_PORT: String(this.distPort),
      RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(dir, 'log'),
      RABBITMQ_PID_FILE: join(dir, 'pid'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
      RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'),
      ...(this.advanced ? { RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config') } : {}),
    };
  }

  /** Starts the node again on the same ports and data (after `halt` or `kill`). */
  async boot(): Promise<void> {
    if (this.container && this.podman) {
      await this.podman.run('rm', '--force', '--ignore', this.container).catch(() => {});
      // Nodes in containers register with the host's epmd, which outlives any one of them.
      await run('epmd', ['-daemon']).catch(() => {});
      const [command = 'podman', ...args] = this.podman.command(
        ...nodeContainer(this.container, this.dir, this.mounts, this.environment()),
      );
      this.process = spawn(command, args, { stdio: 'ignore', detached: true });
    } else {
      this.process = spawn('rabbitmq-server', [], {
        env: { ...process.env, ...this.environment() },
        stdio: 'ignore',
        detached: true,
      });
    }
    this.process.unref();
    if (!(await reachable(this.url, 60_000))) {
      await this.halt();
      throw new Error(
        `the private RabbitMQ node ${this.name} did not start within 60 s (logs in ${join(this.dir, 'log')})`,
      );
    }
  }

  /** Stops the node, keeping its data, as a broker restart does. */
  async halt(): Promise<void> {
    await this.ctl('stop').catch(() => this.kill());
    if (this.container)
      await this.podman?.run('rm', '--force', '--ignore', this.container).catch(() => {});
    this.process = undefined;
  }

  /** SIGKILLs the node, keeping its data, as a lost machine does to a broker. */
  async kill(): Promise<void> {
    if (this.container) {
      await this.podman?.run('kill', this.container).catch(() => {});
      await this.podman?.run('rm', '--force', '--ignore', this.container).catch(() => {});
    } else if (this.process?.pid) {
      try {
        process.kill(-this.process.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.process = undefined;
  }

  /** Runs `rabbitmqctl` against this node. */
  async ctl(...args: string[]): Promise<string> {
    const [command = 'rabbitmqctl', ...rest] = this.ctlCommand;
    const { stdout } = await run(command, [...rest, ...args], { timeout: 60_000 });
    return stdout;
  }

  async stop(): Promise<void> {
    await this.halt();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The broker's version, from the server properties it sends on connecting ('' if unknown). */
export async function brokerVersion(url: string): Promise<string> {
  try {
    const connection = await amqp.connect(url);
    const version = brokerVersionOf(connection);
    await connection.close();
    return version;
  } catch {
    return '';
  }
}

async function fromTestcontainers(): Promise<TestBroker | undefined> {
  // Only where a Docker engine is plausibly there: probing for one otherwise costs seconds.
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return undefined;
  try {
    const { GenericContainer, Wait } = await import('testcontainers');
    const container = await new GenericContainer('rabbitmq:4-management')
      .withExposedPorts(5672)
      .withWaitStrategy(Wait.forLogMessage('Server startup complete'))
      .start();
    return {
      url: `amqp://guest:guest@${container.getHost()}:${container.getMappedPort(5672)}`,
      source: 'testcontainers',
      ctlCommand: ['docker', 'exec', container.getId(), 'rabbitmqctl'],
      stop: async () => {
        await container.stop();
      },
    };
  } catch {
    return undefined;
  }
}

/**
 * The broker for integration tests and benchmarks, as the design notes say: `RABBITMQ_URL` if set; else
 * testcontainers where Docker runs; else a private `rabbitmq-server` node (with
 * `WARREN_TEST_BROKER=4`, straight to a private 4.x node in podman); else an error that
 * says how to get one.
 */
export async function startTestBroker(): Promise<TestBroker> {
  const url = process.env.RABBITMQ_URL;
  if (url) return { url, source: 'RABBITMQ_URL', ctlCommand: undefined, stop: async () => {} };
  // A 4.x node asked for is a private node in podman, not whatever testcontainers pulls.
  const container = TEST_BROKER_LINE === '4' ? undefined : await fromTestcontainers();
  if (container) return container;
  if (PrivateNode.available()) return PrivateNode.start();
  throw new Error(
    "integration tests need RabbitMQ: set RABBITMQ_URL=amqp://user:pass@host:port, run Docker for testcontainers, or install Debian's rabbitmq-server (.ci/run does)",
  );
}
