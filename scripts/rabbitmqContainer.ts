import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** The image of 4.x test nodes (made by scripts/broker4.sh). */
export const IMAGE_4 = process.env.WARREN_BROKER4_IMAGE ?? 'localhost/warren-rabbitmq:4.0';

/**
 * What these machines need of podman (../shared/DESIGN.md, "Containers on these machines"): the
 * containers.conf of the private 4.x nodes and of the container tests.
 */
export const CONTAINERS_CONF = `[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
`;

/**
 * podman as a private 4.x node runs it: with `CONTAINERS_CONF` as given, or else the settings
 * above, written into the node's own dir (removed with it).
 */
export class Podman {
  private readonly conf: string;

  constructor(dir: string) {
    this.conf = process.env.CONTAINERS_CONF ?? join(dir, 'containers.conf');
    if (!process.env.CONTAINERS_CONF) writeFileSync(this.conf, CONTAINERS_CONF);
  }

  /** The command line of `podman ARGS` with its settings, for spawning or for tests to run. */
  command(...args: string[]): string[] {
    return ['env', `CONTAINERS_CONF=${this.conf}`, 'podman', ...args];
  }

  async run(...args: string[]): Promise<string> {
    const [command = 'env', ...rest] = this.command(...args);
    return (await exec(command, rest, { timeout: 60_000 })).stdout;
  }

  /** The 4.x image is made once, by scripts/broker4.sh (about 40 s; .ci/run does it). */
  async ensureImage(): Promise<void> {
    const found = await this.run('image', 'exists', IMAGE_4).then(
      () => true,
      () => false,
    );
    if (!found)
      throw new Error(
        `WARREN_TEST_BROKER=4 needs the image ${IMAGE_4}: make it with scripts/broker4.sh (needs root, podman and debootstrap)`,
      );
  }
}

/**
 * `podman run` arguments of a private node: host networking, its dir mounted at the same path
 * (and `mounts`, read-only: files its configuration names), its `RABBITMQ_*` environment, and
 * Debian's `rabbitmq-server` script, which switches to the image's `rabbitmq` user once it owns
 * the dir.
 */
export function nodeContainer(
  name: string,
  dir: string,
  mounts: readonly string[],
  environment: Record<string, string>,
): string[] {
  return [
    'run',
    '--rm',
    '--name',
    name,
    '--network',
    'host',
    '--volume',
    `${dir}:${dir}`,
    ...mounts.flatMap((path) => ['--volume', `${path}:${path}:ro`]),
    ...Object.entries(environment).flatMap(([key, value]) => ['--env', `${key}=${value}`]),
    IMAGE_4,
    'sh',
    '-c',
    `chown -R rabbitmq:rabbitmq ${dir}; exec rabbitmq-server`,
  ];
}
