import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import amqp from 'amqplib';

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
 * A RabbitMQ node of the test's own, on its own ports in a temp dir, started with the Debian
 * `rabbitmq-server` script (which switches to the `rabbitmq` user): fault tests can stop and
 * restart it without touching anything else. Options go into its `rabbitmq.conf`.
 */
export class PrivateNode implements TestBroker {
  readonly source = 'private node';
  readonly url: string;
  readonly ctlCommand: readonly string[];
  private process: ReturnType<typeof spawn> | undefined;

  private constructor(
    readonly name: string,
    readonly port: number,
    private readonly distPort: number,
    readonly dir: string,
  ) {
    this.url = `amqp://guest:guest@127.0.0.1:${port}`;
    this.ctlCommand = ['rabbitmqctl', '-n', name];
  }

  static available(): boolean {
    return (
      existsSync('/usr/sbin/rabbitmq-server') || existsSync('/usr/lib/rabbitmq/bin/rabbitmq-server')
    );
  }

  /** Starts a node; `conf` lines are added to its rabbitmq.conf (e.g. `consumer_timeout = 60000`). */
  static async start(conf: readonly string[] = []): Promise<PrivateNode> {
    const port = await freePort();
    let distPort = await freePort();
    while (distPort === port) distPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'warren-rabbit-'));
    const node = new PrivateNode(
      `warren-test-${process.pid}-${port}@localhost`,
      port,
      distPort,
      dir,
    );
    mkdirSync(join(dir, 'mnesia'));
    mkdirSync(join(dir, 'log'));
    writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
    writeFileSync(
      join(dir, 'rabbitmq.conf'),
      [`listeners.tcp.default = ${port}`, 'loopback_users = none', ...conf, ''].join('\n'),
    );
    // The Debian script runs the node as `rabbitmq`: it must own the directories.
    await run('chown', ['-R', 'rabbitmq:rabbitmq', dir]).catch(() => {});
    await run('chmod', ['755', dir]).catch(() => {});
    await node.boot();
    return node;
  }

  /** Starts the node again on the same ports and data (after `halt`). */
  async boot(): Promise<void> {
    const dir = this.dir;
    this.process = spawn('rabbitmq-server', [], {
      env: {
        ...process.env,
        RABBITMQ_NODENAME: this.name,
        RABBITMQ_NODE_PORT: String(this.port),
        RABBITMQ_DIST_PORT: String(this.distPort),
        RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
        RABBITMQ_LOG_BASE: join(dir, 'log'),
        RABBITMQ_PID_FILE: join(dir, 'pid'),
        RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
        RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'),
      },
      stdio: 'ignore',
      detached: true,
    });
    this.process.unref();
    if (!(await reachable(this.url, 60_000))) {
      await this.halt();
      throw new Error(
        `the private RabbitMQ node ${this.name} did not start within 60 s (logs in ${join(dir, 'log')})`,
      );
    }
  }

  /** Stops the node, keeping its data, as a broker restart does. */
  async halt(): Promise<void> {
    await run('rabbitmqctl', ['-n', this.name, 'stop'], { timeout: 60_000 }).catch(() => {
      if (this.process?.pid) {
        try {
          process.kill(-this.process.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });
    this.process = undefined;
  }

  /** Runs `rabbitmqctl` against this node. */
  async ctl(...args: string[]): Promise<string> {
    const { stdout } = await run('rabbitmqctl', ['-n', this.name, ...args], { timeout: 60_000 });
    return stdout;
  }

  async stop(): Promise<void> {
    await this.halt();
    rmSync(this.dir, { recursive: true, force: true });
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
 * testcontainers where Docker runs; else a private `rabbitmq-server` node; else an error that
 * says how to get one.
 */
export async function startTestBroker(): Promise<TestBroker> {
  const url = process.env.RABBITMQ_URL;
  if (url) return { url, source: 'RABBITMQ_URL', ctlCommand: undefined, stop: async () => {} };
  const container = await fromTestcontainers();
  if (container) return container;
  if (PrivateNode.available()) return PrivateNode.start();
  throw new Error(
    "integration tests need RabbitMQ: set RABBITMQ_URL=amqp://user:pass@host:port, run Docker for testcontainers, or install Debian's rabbitmq-server (.ci/run does)",
  );
}
