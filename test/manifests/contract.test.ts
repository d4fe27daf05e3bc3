import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { render } from '../../scripts/plainManifests.js';
import { freePort } from '../helpers/broker.js';
import { FIXTURES, ROOT, tempDir } from '../helpers/cli.js';
import { brokerUrl, deleteQueues, testQueue } from '../helpers/fleet.js';
import { readImage } from '../helpers/image.js';
import { type K8sObject, rendered } from '../helpers/kube.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';
import { launchOf, type PodWorld, startContainer } from '../helpers/pod.js';

const CONTROLLER_UID = "metadata.labels['batch.kubernetes.io/controller-uid']";
const STUDY = join(ROOT, 'examples', 'makita');

/** The secrets the docs tell people to have: the operator's default user, the signing key, S3. */
function secrets(): PodWorld['secrets'] {
  const url = new URL(brokerUrl());
  return {
    'warren-rabbitmq-default-user': {
      host: url.hostname,
      port: url.port || '5672',
      username: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
    },
    'warren-signing-key': { key: randomBytes(24).toString('hex') },
    // The cloud overlays' S3 settings (nothing here uploads).
    'warren-s3': {
      S3_ENDPOINT_URL: 'http://127.0.0.1:9',
      S3_REGION_NAME: 'eu-west-1',
      S3_AWS_ACCESS_KEY_ID: 'warren',
      S3_AWS_SECRET_ACCESS_KEY: randomBytes(12).toString('hex'),
      S3_BUCKET: 'my-study',
      S3_PREFIX: '',
    },
  };
}

async function ready(port: number): Promise<void> {
  for (let tries = 0; tries < 200; tries += 1) {
    const status = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (response) => response.status,
      () => 0,
    );
    if (status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`worker on health port ${port} never became ready`);
}

describe('the rendered manifests, run as Kubernetes would run them (minus the cluster)', () => {
  const base = rendered('base');
  const drain = rendered('overlays/cloud-drain');
  const byName = (objects: K8sObject[], kind: string, name: string): K8sObject => {
    const found = objects.find((object) => object.kind === kind && object.metadata.name === name);
    if (!found) throw new Error(`no ${kind} ${name}`);
    return found;
  };
  const deployment = byName(base, 'Deployment', 'warren-worker');
  const run = rendered('base/run');
  const workerImage = readImage('Dockerfile.worker');
  const taskerImage = readImage('Dockerfile.tasker');
  const queue = testQueue();
  const signing = secrets();
  let scratch: ReturnType<typeof tempDir>;

  beforeAll(() => {
    scratch = tempDir('warren-contract-');
  });
  afterAll(async () => {
    scratch.cleanup();
    await deleteQueues(queue);
  });

  /** Starts `count` pods of a worker template, sharing the data volume, each with its own port. */
  async function startWorkers(owner: K8sObject, count: number, data: string) {
    const pod = owner.spec.template.spec;
    const [container] = pod.containers;
    return Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const name = `${owner.metadata.name}-5d8f7-${i}`;
        const port = await freePort();
        const metrics = await freePort();
        const own = join(scratch.dir, name);
        const launch = launchOf(workerImage, pod, container, {
          volumes: { data, inflight: join(own, 'inflight'), tmp: join(own, 'tmp') },
          secrets: signing,
          fields: { 'metadata.name': name },
          ports: { 8080: port, 9090: metrics },
          extraEnv: { WARREN_QUEUE: queue },
        });
        mkdirSync(join(own, 'inflight'), { recursive: true });
        mkdirSync(join(own, 'tmp'), { recursive: true });
        return { name, port, metrics, process: startContainer(launch) };
      }),
    );
  }

  /** One pod of the tasker Job with the given UID, its script from the ConfigMap as rendered. */
  function taskerPod(
    uid: string,
    data: string,
    objects: K8sObject[] = run,
    settings: Record<string, string> = {},
  ) {
    const pod = byName(objects, 'Job', 'warren-tasker').spec.template.spec;
    const script = byName(objects, 'ConfigMap', 'warren-tasker-script');
    const own = join(scratch.dir, `tasker-${randomBytes(3).toString('hex')}`);
    const tmp = join(own, 'tmp');
    const scriptDir = join(own, 'tasker-script');
    mkdirSync(tmp, { recursive: true });
    mkdirSync(scriptDir);
    // As the kubelet writes a ConfigMap volume: each key a file, with the volume's defaultMode.
    const volume = pod.volumes.find((v: K8sObject) => v.configMap?.name === script.metadata.name);
    for (const [key, text] of Object.entries(script.data as Record<string, string>))
      writeFileSync(join(scriptDir, key), text, { mode: volume.configMap.defaultMode });
    return startContainer(
      launchOf(taskerImage, pod, pod.containers[0], {
        volumes: { data, tmp, [volume.name]: scriptDir },
        secrets: signing,
        fields: { [CONTROLLER_UID]: uid },
        // The study a user's tasker image carries (FROM warren-tasker, COPY into /opt/study).
        extraEnv: { WARREN_QUEUE: queue, STUDY_DIR: STUDY, ...settings },
      }),
    );
  }

  it('the worker Deployment and tasker Job run a Makita study; a killed tasker pod resumes it', async () => {
    const data = join(scratch.dir, 'data');
    mkdirSync(data);
    const workers = await startWorkers(deployment, deployment.spec.replicas, data);
    try {
      // As the kubelet would before sending traffic: every worker's readiness probe passes.
      const [container] = deployment.spec.template.spec.containers;
      expect(container.readinessProbe.httpGet.path).toBe('/readyz');
      await Promise.all(workers.map((worker) => ready(worker.port)));

      const uid = randomUUID();
      const stateDir = join(data, '.warren');
      // The run's directory is made a moment before its ledger: wait for the ledger itself.
      const ledger = () =>
        existsSync(join(stateDir, 'runs', uid, 'ledger.jsonl')) ? ledgerOf(stateDir, uid) : [];

      // The first pod dies (a lost node: the whole pod, at once) once the jobs file exists.
      const first = taskerPod(uid, data);
      for (let waited = 0; ; waited += 50) {
        if (endsOf(ledger()).some((end) => end.phase === 'makita')) break;
        if (waited > 30_000) throw new Error('the tasker never prepared the study');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      process.kill(-(first.pid as number), 'SIGKILL');
      await first;
      writeFileSync(join(data, 'notes.txt'), 'written between the two pods\n');

      // The Job's next pod, same UID: it resumes and finishes.
      const second = await taskerPod(uid, data);
      expect(second.exitCode, second.stderr).toBe(0);
      expect(second.stdout).toContain(`run ${uid} finished`);
      expect(readFileSync(join(data, 'notes.txt'), 'utf8')).toContain('between'); // not cleaned twice
      expect(existsSync(join(data, 'data', 'Smid_2020.csv'))).toBe(true);
      const final = join(data, 'output', 'tables', 'metrics_all.csv');
      expect(readFileSync(final, 'utf8')).toContain('merged 2 datasets');

      const ends = endsOf(ledger());
      expect(ends.every((end) => end.state === 'succeeded')).toBe(true);
      const perTask = new Map<string, number>();
      for (const end of ends) perTask.set(end.task, (perTask.get(end.task) ?? 0) + 1);
      expect([...perTask.values()].every((count) => count === 1)).toBe(true);
      expect(ends.filter((end) => end.phase === 'data')).toHaveLength(1);
      // Parallel phases ran on the worker pods, named by the downward API.
      const simulations = ends.filter((end) => end.phase === 'simulate');
      expect(simulations).toHaveLength(2);
      for (const end of simulations)
        expect(workers.map((worker) => worker.name)).toContain(end.worker.replace(/-\d+$/, ''));
      // What Prometheus would scrape from the pods adds up to what ran on them.
      let scraped = 0;
      for (const worker of workers) {
        const text = await (await fetch(`http://127.0.0.1:${worker.metrics}/metrics`)).text();
        for (const line of text.split('\n'))
          if (line.startsWith('warren_tasks_total{') && line.includes('outcome="succeeded"'))
            scraped += Number(line.split(' ').at(-1));
      }
      const onPods = ends.filter((end) => workers.some((w) => end.worker.startsWith(`${w.name}-`)));
      expect(scraped).toBe(onPods.length);

      // A pod that starts after the run succeeded does nothing again.
      const before = statSync(final).mtimeMs;
      const third = await taskerPod(uid, data);
      expect(third.exitCode, third.stderr).toBe(0);
      expect(statSync(final).mtimeMs).toBe(before);
      expect(endsOf(ledger())).toHaveLength(ends.length);

      // The next run (a new Job, a new UID) would empty the directory: with WARREN_KEEP_OUTPUTS=1
      // (a setting of tasker.sh) it refuses, saying whose outputs are there; without, it says
      // whose outputs it removes.
      const next = randomUUID();
      const kept = await taskerPod(next, data, run, { WARREN_KEEP_OUTPUTS: '1' });
      expect(kept.exitCode).toBe(2);
      expect(kept.stderr).toContain(`holds the outputs of run ${uid}`);
      expect(existsSync(final)).toBe(true);
      const fresh = await taskerPod(next, data);
      expect(fresh.exitCode, fresh.stderr).toBe(0);
      expect(fresh.stdout).toContain(`new run ${next}: removing the outputs of run ${uid}`);
      expect(existsSync(join(data, 'notes.txt'))).toBe(false);
    } finally {
      for (const worker of workers) worker.process.kill('SIGTERM');
      const exits = await Promise.all(workers.map((worker) => worker.process));
      // SIGTERM (what the kubelet sends) stops an idle worker cleanly.
      expect(exits.map((exit) => exit.exitCode)).toEqual(exits.map(() => 0));
    }
  }, 120_000);

  it('the tasker Job runs your tasker.sh from its ConfigMap, not the image’s', async () => {
    const data = join(scratch.dir, 'own-data');
    mkdirSync(data);
    const own = render(join(FIXTURES, 'kube', 'own-script')) as K8sObject[];
    const uid = randomUUID();
    const pod = await taskerPod(uid, data, own);
    expect(pod.exitCode, pod.stderr).toBe(0);
    expect(pod.stdout).toContain(`my own study, run ${uid}`);
    expect(readFileSync(join(data, 'own-script.txt'), 'utf8').trim()).toBe(uid);
  }, 30_000);

  it('the drain-mode worker Job starts with its flags, reports ready and stops on SIGTERM', async () => {
    const data = join(scratch.dir, 'drain-data');
    mkdirSync(data);
    const drainJob = byName(drain, 'Job', 'warren-drain-workers');
    const [worker] = await startWorkers(drainJob, 1, data);
    await ready(worker?.port as number);
    worker?.process.kill('SIGTERM');
    const exit = await worker?.process;
    expect(exit?.exitCode, exit?.stderr).toBe(0);
  }, 60_000);
});
