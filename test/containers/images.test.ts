import { randomUUID } from 'node:crypto';
import { chmodSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTAINERS_CONF } from '../../scripts/rabbitmqContainer.js';
import { ROOT, tempDir } from '../helpers/cli.js';
import { brokerUrl, deleteQueues, testQueue } from '../helpers/fleet.js';
import { type K8sObject, rendered } from '../helpers/kube.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';
import { containerEnv } from '../helpers/pod.js';
import { objectsIn, s3Env, testBucket } from '../helpers/s3.js';

/**
 * The images built with podman from the Dockerfiles, and a study's images built FROM them the
 * way docs/kubernetes.md says (examples/tasker-image, examples/worker-image, their software
 * block swapped for the stand-ins of test/fixtures/bin: no Python index is reachable here),
 * run as the rendered pod templates say: env, args, user, read-only root, dropped capabilities,
 * volumes; the machine's broker behind a Secret of the operator's shape.
 */

const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

const scratch = tempDir('warren-containers-');
const confFile = join(scratch.dir, 'containers.conf');
writeFileSync(confFile, CONTAINERS_CONF);
const env = {
  ...process.env,
  CONTAINERS_CONF: process.env.CONTAINERS_CONF ?? confFile,
  WARREN_BUILDER: 'podman',
};
const podman = (args: string[], timeout = 600_000) =>
  execa('podman', args, { env, reject: false, timeout, all: true });

/** Why containers cannot run here, or undefined when they can. */
async function unavailable(): Promise<string | undefined> {
  const info = await podman(['info', '--format', '{{.Host.OCIRuntime.Name}}'], 30_000).catch(
    () => undefined,
  );
  if (info === undefined) return 'podman is not installed';
  return info.exitCode === 0 ? undefined : `podman cannot run here: ${info.all?.split('\n')[0]}`;
}
const why = await unavailable();
if (why) console.log(`container tests skipped: ${why}`);

/** A study image's Dockerfile from an example's, its software swapped for the stand-ins. */
function studyContext(example: string, data: boolean): string {
  const dir = join(scratch.dir, example);
  mkdirSync(dir, { recursive: true });
  const dockerfile = readFileSync(join(ROOT, 'examples', example, 'Dockerfile'), 'utf8');
  const swapped = dockerfile.replace(
    /# ---- your software ----\n[\s\S]*?# ---- end of your software ----\n/,
    'COPY bin/ /usr/local/bin/\nCOPY corpus /usr/local/corpus\n',
  );
  expect(swapped, `examples/${example}/Dockerfile marks its software block`).not.toBe(dockerfile);
  writeFileSync(join(dir, 'Dockerfile'), swapped);
  cpSync(join(ROOT, 'test', 'fixtures', 'bin'), join(dir, 'bin'), { recursive: true });
  cpSync(join(ROOT, 'test', 'fixtures', 'corpus', 'makita'), join(dir, 'corpus', 'makita'), {
    recursive: true,
  });
  if (data)
    cpSync(join(ROOT, 'examples', 'makita', 'data'), join(dir, 'data'), { recursive: true });
  return dir;
}

interface World {
  readonly image: string;
  readonly name: string;
  readonly data: string;
  readonly secrets: Record<string, Record<string, string>>;
  readonly fields: Record<string, string>;
  readonly configMaps: Record<string, Record<string, string>>;
  /** Container port → the port used here (host networking: two pods cannot share one). */
  readonly ports: Record<string, string>;
  /** Isolation from other tests only, never what the YAML should set. */
  readonly extraEnv: Record<string, string>;
  /** What a user edits in the args (the slots), as they would in the YAML. */
  readonly argEdits?: Record<string, string>;
}

/** `podman run` arguments for a pod template's first container, as the kubelet would start it. */
function podmanRun(pod: K8sObject, world: World): string[] {
  const container = pod.containers[0] as K8sObject;
  const args = ['run', '-d', '--name', world.name, '--network', 'host'];
  const context = pod.securityContext ?? {};
  const own = container.securityContext ?? {};
  args.push('--user', `${context.runAsUser}:${context.runAsGroup}`);
  if (own.readOnlyRootFilesystem) args.push('--read-only');
  for (const cap of own.capabilities?.drop ?? []) args.push('--cap-drop', cap);
  if (own.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
  for (const mount of container.volumeMounts ?? []) {
    const volume = (pod.volumes as K8sObject[]).find((v) => v.name === mount.name);
    if (!volume) throw new Error(`no volume ${mount.name}`);
    if (volume.persistentVolumeClaim) args.push('-v', `${world.data}:${mount.mountPath}`);
    else if (volume.emptyDir) args.push('--tmpfs', `${mount.mountPath}:rw,mode=1777`);
    else if (volume.configMap) {
      const files = world.configMaps[volume.configMap.name];
      if (!files) throw new Error(`configmap ${volume.configMap.name} does not exist`);
      const dir = join(scratch.dir, `${world.name}-${mount.name}`);
      mkdirSync(dir, { recursive: true });
      for (const [key, text] of Object.entries(files)) {
        writeFileSync(join(dir, key), text);
        chmodSync(join(dir, key), volume.configMap.defaultMode ?? 0o644);
      }
      const source = mount.subPath ? join(dir, mount.subPath) : dir;
      args.push('-v', `${source}:${mount.mountPath}:ro`);
    } else throw new Error(`volume ${mount.name}: kind not modelled`);
  }
  for (const [name, value] of Object.entries(containerEnv(container, world)))
    args.push('-e', `${name}=${value}`);
  for (const [name, value] of Object.entries(world.extraEnv)) args.push('-e', `${name}=${value}`);
  if (container.command) args.push('--entrypoint', JSON.stringify(container.command));
  args.push(world.image);
  for (const arg of container.args ?? []) {
    const [flag, value] = arg.split('=', 2);
    const edited = world.argEdits?.[flag] ?? (value && world.ports[value]) ?? value;
    args.push(value === undefined ? arg : `${flag}=${edited}`);
  }
  return args;
}

describe.skipIf(why !== undefined)(
  'the images, built with podman and run as the pod templates say',
  () => {
    const base = rendered('base');
    const run = rendered('base/run');
    const find = (objects: K8sObject[], kind: string) => {
      const found = objects.find((object) => object.kind === kind);
      if (!found) throw new Error(`no ${kind} rendered`);
      return found;
    };
    const deployment = find(base, 'Deployment');
    const job = find(run, 'Job');
    const script = find(run, 'ConfigMap');
    const queue = testQueue();
    const started: string[] = [];
    const url = new URL(brokerUrl());
    const secrets = {
      'warren-rabbitmq-default-user': {
        host: url.hostname,
        port: url.port || '5672',
        username: decodeURIComponent(url.username),
        password: decodeURIComponent(url.password),
        provider: 'rabbitmq',
        type: 'rabbitmq',
      },
    };

    beforeAll(async () => {
      const step = async (what: string, file: string, args: string[]) => {
        const result = await execa(file, args, { cwd: ROOT, env, reject: false, all: true });
        if (result.exitCode !== 0) throw new Error(`${what} failed:\n${result.all}`);
      };
      await step('the base image', 'scripts/kube/stand-in-base.sh', []);
      await step('building the images', 'scripts/kube/build-images.sh', []);
      for (const [example, data] of [
        ['tasker-image', true],
        ['worker-image', false],
      ] as const) {
        const name = `warren-study-${example.replace('-image', '')}:test`;
        const arg = example === 'tasker-image' ? 'WARREN_TASKER' : 'WARREN_WORKER';
        const image = example === 'tasker-image' ? 'warren-tasker' : 'warren-worker';
        await step(`building ${name}`, 'podman', [
          'build',
          '-q',
          '--build-arg',
          `${arg}=${image}:${VERSION}`,
          '-t',
          name,
          studyContext(example, data),
        ]);
      }
    }, 1_200_000);

    afterAll(async () => {
      if (started.length > 0) await podman(['rm', '-f', ...started]);
      await deleteQueues(queue);
      scratch.cleanup?.();
    });

    it('the stock tasker.sh runs a Makita study through two workers of two slots; a worker SIGKILLed mid-run costs nothing', async () => {
      const data = join(scratch.dir, 'data');
      mkdirSync(data);
      chmodSync(data, 0o777);
      const common = { data, secrets, configMaps: { [script.metadata.name]: script.data } };
      const extraEnv = {
        WARREN_QUEUE: queue,
        WARREN_LEASE_INTERVAL: '1s',
        WARREN_LOST_AFTER: '5s',
      };
      const startWorker = async (i: number) => {
        const name = `warren-test-worker-${i}-${randomUUID().slice(0, 6)}`;
        const result = await podman(
          podmanRun(deployment.spec.template.spec, {
            ...common,
            image: 'warren-study-worker:test',
            name,
            fields: { 'metadata.name': name },
            ports: { '8080': String(18180 + i), '9090': String(19190 + i) },
            extraEnv: { ...extraEnv, STAND_IN_SIMULATE_MS: '400' },
            argEdits: { '--concurrency': '2' },
          }),
        );
        expect(result.exitCode, result.all).toBe(0);
        started.push(name);
        return name;
      };
      const first = await startWorker(1);
      await startWorker(2);
      const uid = randomUUID();
      const tasker = `warren-test-tasker-${uid.slice(0, 6)}`;
      const launched = await podman(
        podmanRun(job.spec.template.spec, {
          ...common,
          image: 'warren-study-tasker:test',
          name: tasker,
          fields: { "metadata.labels['batch.kubernetes.io/controller-uid']": uid },
          ports: {},
          extraEnv: { ...extraEnv, MAKITA_TEMPLATE: 'arfi' },
        }),
      );
      expect(launched.exitCode, launched.all).toBe(0);
      started.push(tasker);
      // Mid-run: once some simulations are done, one worker container dies at once.
      const stateDir = join(data, '.warren');
      for (let waited = 0; ; waited += 250) {
        const ends = (() => {
          try {
            return endsOf(ledgerOf(stateDir, uid)).length;
          } catch {
            return 0;
          }
        })();
        if (ends >= 20) break;
        if (waited > 300_000) throw new Error('the run never got going');
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      await podman(['kill', '--signal', 'KILL', first]);
      const exited = await podman(['wait', tasker], 600_000);
      const logs = await podman(['logs', tasker]);
      expect(exited.stdout.trim(), logs.all).toBe('0');
      expect(logs.all).toContain(`run ${uid} succeeded`);
      const ends = endsOf(ledgerOf(stateDir, uid));
      const tasks = new Set(ends.map((end) => end.task));
      const succeeded = ends.filter((end) => end.state === 'succeeded');
      // Every task recorded once, succeeded; arfi's 65 simulations among them.
      expect(succeeded.length).toBe(tasks.size);
      expect(ends.filter((end) => end.final).length).toBe(tasks.size);
      expect(ends.filter((end) => /asreview simulate/.test(end.command ?? '')).length).toBe(65);
    }, 900_000);

    it('the stock tasker image, with no study in it, says so and fails the Job at once', async () => {
      const data = join(scratch.dir, 'data-nostudy');
      mkdirSync(data);
      chmodSync(data, 0o777);
      const name = `warren-test-nostudy-${randomUUID().slice(0, 6)}`;
      const result = await podman([
        ...podmanRun(job.spec.template.spec, {
          data,
          secrets,
          configMaps: { [script.metadata.name]: script.data },
          image: `warren-tasker:${VERSION}`,
          name,
          fields: { "metadata.labels['batch.kubernetes.io/controller-uid']": randomUUID() },
          ports: {},
          extraEnv: { WARREN_QUEUE: queue },
        }).filter((arg) => arg !== '-d'),
      ]);
      started.push(name);
      // Exit 2: the Job's failure policy fails the Job instead of retrying it.
      expect(result.exitCode, result.all).toBe(2);
      expect(
        job.spec.podFailurePolicy.rules.some((rule: K8sObject) =>
          rule.onExitCodes?.values.includes(2),
        ),
      ).toBe(true);
      expect(result.all).toContain('this image has no study');
      expect(result.all).toContain('examples/tasker-image');
    }, 300_000);

    it('a drain-mode worker uploads each simulation to S3 and exits once the queue stays empty', async () => {
      // The cloud-drain overlay's worker Job and the cloud run's tasker Job: S3 settings from
      // the warren-s3 Secret on both; the user's tasker.sh uploads the state files.
      const drain = find(rendered('overlays/cloud-drain'), 'Job');
      const cloudRun = rendered('overlays/cloud/run');
      const cloudJob = find(cloudRun, 'Job');
      const cloudScript = find(cloudRun, 'ConfigMap');
      const stock = cloudScript.data['tasker.sh'] as string;
      const edited = stock.replace(
        'tasker run jobs.sh --rules makita\n',
        "tasker run jobs.sh --rules makita --upload 'output/simulation/**/*.asreview'\n",
      );
      expect(edited, 'the stock tasker.sh runs `tasker run jobs.sh --rules makita`').not.toBe(
        stock,
      );
      const bucket = await testBucket();
      const data = join(scratch.dir, 'data-drain');
      mkdirSync(data);
      chmodSync(data, 0o777);
      const drainQueue = testQueue();
      const common = {
        data,
        secrets: { ...secrets, 'warren-s3': s3Env(bucket, 'study') },
        configMaps: { [cloudScript.metadata.name]: { ...cloudScript.data, 'tasker.sh': edited } },
        ports: {},
      };
      const uid = randomUUID();
      const tasker = `warren-test-tasker-${uid.slice(0, 6)}`;
      const worker = `warren-test-drain-${uid.slice(0, 6)}`;
      try {
        const launched = await podman(
          podmanRun(cloudJob.spec.template.spec, {
            ...common,
            image: 'warren-study-tasker:test',
            name: tasker,
            fields: { "metadata.labels['batch.kubernetes.io/controller-uid']": uid },
            extraEnv: { WARREN_QUEUE: drainQueue, MAKITA_TEMPLATE: 'basic' },
          }),
        );
        expect(launched.exitCode, launched.all).toBe(0);
        started.push(tasker);
        const drained = await podman(
          podmanRun(drain.spec.template.spec, {
            ...common,
            image: 'warren-study-worker:test',
            name: worker,
            fields: { 'metadata.name': worker },
            ports: { '8080': '18189', '9090': '19199' },
            extraEnv: { WARREN_QUEUE: drainQueue },
            argEdits: { '--exit-when-idle': '20s' },
          }),
        );
        expect(drained.exitCode, drained.all).toBe(0);
        started.push(worker);
        const exited = await podman(['wait', tasker], 600_000);
        const logs = await podman(['logs', tasker]);
        expect(exited.stdout.trim(), logs.all).toBe('0');
        expect(logs.all).toContain(`run ${uid} succeeded`);
        // The worker exits 0 by itself once the queue has stayed empty: a Job that completes.
        const workerExit = await podman(['wait', worker], 120_000);
        const workerLogs = await podman(['logs', worker]);
        expect(workerExit.stdout.trim(), workerLogs.all).toBe('0');
        expect(workerLogs.all).toContain('queue empty and idle');
        // Every simulation's state file is in the bucket, under the prefix and the run id.
        const ends = endsOf(ledgerOf(join(data, '.warren'), uid));
        const simulations = ends.filter((end) => /asreview simulate/.test(end.command ?? ''));
        expect(simulations.length).toBe(2);
        const objects = await objectsIn(bucket, `study/${uid}/`);
        for (const end of simulations) {
          const output = / -o (\S+\.asreview)/.exec(end.command ?? '')?.[1];
          expect(objects.get(`study/${uid}/${output}`), `${output} uploaded`).toBeGreaterThan(0);
          expect(end.uploaded?.map((file) => file.key)).toEqual([`study/${uid}/${output}`]);
        }
        expect([...objects.keys()].every((key) => key.endsWith('.asreview'))).toBe(true);
        // The tasker Job has the S3 settings too: its ledger is there, for the next run's order.
        const ledgers = await objectsIn(bucket, 'study/.warren/ledgers/');
        expect(ledgers.get(`study/.warren/ledgers/${uid}.jsonl`)).toBeGreaterThan(0);
      } finally {
        await deleteQueues(drainQueue);
      }
    }, 900_000);
  },
);
