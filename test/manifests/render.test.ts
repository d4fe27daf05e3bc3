import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ScaledJob,
  ScaledObject,
  TriggerAuthentication,
} from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Ajv } from 'ajv';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import {
  ConfigMap,
  Namespace,
  PersistentVolume,
  PersistentVolumeClaim,
} from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { PLAIN, plainFiles, render, TASKER_SCRIPT } from '../../scripts/plainManifests.js';
import { loadClasses } from '../../shared/config/classes.js';
import { ENVIRONMENT } from '../../shared/config/environment.js';
import { classQueue, NAMES } from '../../shared/topology.js';
import { FIXTURES, ROOT } from '../helpers/cli.js';
import { type K8sObject, rendered } from '../helpers/kube.js';

const MANIFESTS = join(ROOT, 'manifests');
const OVERLAYS = [
  'base',
  'base/run',
  'overlays/minikube',
  'overlays/minikube/run',
  'overlays/cloud',
  'overlays/cloud/run',
  'overlays/cloud-drain',
  'overlays/cloud-keda-jobs',
  '../test/fixtures/kube/size-classes',
  '../test/fixtures/kube/size-classes/run',
];
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

const rabbitmqCluster = new Ajv({ allErrors: true, strict: false }).compile(
  JSON.parse(readFileSync(join(FIXTURES, 'rabbitmqcluster.schema.json'), 'utf8')),
);

/** Validates an object against its kind's schema: Kubernetes', KEDA's, or the RabbitmqCluster one. */
function validate(object: K8sObject): void {
  const models: Record<string, new (data: never) => { validate(): void }> = {
    'v1/Namespace': Namespace,
    'v1/ConfigMap': ConfigMap,
    'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
    'v1/PersistentVolume': PersistentVolume,
    'v1/PersistentVolumeClaim': PersistentVolumeClaim,
    'apps/v1/Deployment': Deployment,
    'batch/v1/Job': Job,
    'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
    'keda.sh/v1alpha1/ScaledObject': ScaledObject,
    'keda.sh/v1alpha1/ScaledJob': ScaledJob,
    'keda.sh/v1alpha1/TriggerAuthentication': TriggerAuthentication,
    'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
  };
  const key = `${object.apiVersion}/${object.kind}`;
  if (key === 'rabbitmq.com/v1beta1/RabbitmqCluster') {
    if (!rabbitmqCluster(object)) throw new Error(JSON.stringify(rabbitmqCluster.errors));
    return;
  }
  if (key === 'keda.sh/v1alpha1/ScaledJob') {
    // The KEDA models that install on Node 20 (@kubernetes-models/keda 0.4) embed an older
    // Kubernetes' JobSpec (it wants onPodConditions in every podFailurePolicy rule, a protocol
    // on every port); the newer ones want Node 22. So the ScaledJob's own fields are checked
    // against KEDA's schema, and its jobTargetRef, a JobSpec, against Kubernetes' Job.
    const { jobTargetRef, ...spec } = object.spec;
    new Job({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: object.metadata.name },
      spec: jobTargetRef,
    } as never).validate();
    new ScaledJob({
      ...object,
      spec: { ...spec, jobTargetRef: { template: { spec: { containers: [] } } } },
    } as never).validate();
    return;
  }
  const Model = models[key];
  if (!Model) throw new Error(`no schema for ${key}: add it to the test`);
  new Model(object as never).validate();
}

/** Workloads and their pod specs. */
function podSpecs(objects: readonly K8sObject[]): { owner: K8sObject; template: K8sObject }[] {
  return objects.flatMap((owner) => {
    if (owner.kind === 'Deployment' || owner.kind === 'Job')
      return [{ owner, template: owner.spec.template }];
    if (owner.kind === 'ScaledJob') return [{ owner, template: owner.spec.jobTargetRef.template }];
    return [];
  });
}

describe('Kubernetes manifests', () => {
  it.each(OVERLAYS)('%s renders, and every object validates against its schema', (overlay) => {
    const objects = rendered(overlay);
    // A run is its script and its Job; the rest, at least the namespace, broker, claim and workers.
    expect(objects.length).toBeGreaterThanOrEqual(overlay.endsWith('/run') ? 2 : 4);
    for (const object of objects) {
      expect(() => validate(object), `${object.kind} ${object.metadata?.name}`).not.toThrow();
      if (!['Namespace', 'PersistentVolume'].includes(object.kind))
        expect(object.metadata.namespace, object.kind).toBe('warren');
      expect(object.metadata.labels?.['app.kubernetes.io/part-of'], object.kind).toBe('warren');
    }
  });

  it.each(OVERLAYS)(
    '%s: labels, requests, security context and probes as the house style says',
    (overlay) => {
      for (const { owner, template } of podSpecs(rendered(overlay))) {
        const where = `${owner.kind} ${owner.metadata.name}`;
        for (const labels of [owner.metadata.labels, template.metadata.labels]) {
          for (const key of [
            'app.kubernetes.io/name',
            'app.kubernetes.io/component',
            'app.kubernetes.io/part-of',
          ]) {
            expect(labels?.[key], `${where}: ${key}`).toBeTruthy();
          }
        }
        const pod = template.spec;
        expect(pod.securityContext, where).toMatchObject({
          runAsNonRoot: true,
          seccompProfile: { type: 'RuntimeDefault' },
        });
        for (const container of pod.containers) {
          expect(container.resources.requests.cpu, where).toBeTruthy();
          expect(container.resources.requests.memory, where).toBeTruthy();
          expect(container.resources.limits.memory, `${where}: memory limit = request`).toBe(
            container.resources.requests.memory,
          );
          expect(container.securityContext, where).toMatchObject({
            allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] },
          });
          // A read-only root: everything written goes to a volume.
          expect(container.securityContext.readOnlyRootFilesystem, where).toBe(true);
          const mounts = (container.volumeMounts ?? []).map((mount: K8sObject) => mount.mountPath);
          expect(mounts, where).toEqual(expect.arrayContaining(['/data', '/tmp']));
        }
        if (owner.kind === 'Deployment') {
          const [worker] = pod.containers;
          expect(worker.livenessProbe.httpGet).toEqual({ path: '/livez', port: 'health' });
          expect(worker.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
          expect(worker.ports).toContainEqual({ name: 'health', containerPort: 8080 });
          // The pod's grace outlasts the worker's own: --grace, then --kill-grace.
          const seconds = (flag: string) =>
            Number(
              /=(\d+)s$/.exec(worker.args.find((arg: string) => arg.startsWith(flag)) ?? '')?.[1] ??
                Number.NaN,
            );
          expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(
            seconds('--grace=') + seconds('--kill-grace='),
          );
        }
      }
    },
  );

  it('workers serve /metrics on a named port that the annotations and the PodMonitor scrape', () => {
    const objects = render(join(FIXTURES, 'kube', 'podmonitor')) as K8sObject[];
    const monitor = objects.find((object) => object.kind === 'PodMonitor') as K8sObject;
    expect(() => validate(monitor)).not.toThrow();
    const [endpoint] = monitor.spec.podMetricsEndpoints;
    const workers = podSpecs(objects).filter(({ owner }) =>
      ['warren-worker', 'warren-drain-workers'].includes(owner.metadata.name),
    );
    expect(workers).toHaveLength(2);
    for (const { owner, template } of workers) {
      const where = owner.metadata.name;
      const [worker] = template.spec.containers;
      const port = worker.ports.find((p: K8sObject) => p.name === endpoint.port);
      expect(port, where).toBeTruthy();
      expect(worker.args, where).toContain(`--metrics-port=${port.containerPort}`);
      expect(template.metadata.annotations, where).toMatchObject({
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': String(port.containerPort),
        'prometheus.io/path': endpoint.path,
      });
      // The PodMonitor's selector takes this pod.
      const labels = template.metadata.labels;
      for (const rule of monitor.spec.selector.matchExpressions)
        expect(rule.values, `${where}: ${rule.key}`).toContain(labels[rule.key]);
    }
  });

  it('sets no environment variable Warren does not read, and names secrets the docs name', () => {
    const secrets = new Set<string>();
    for (const overlay of OVERLAYS) {
      for (const { template } of podSpecs(rendered(overlay))) {
        for (const container of template.spec.containers) {
          for (const variable of container.env ?? []) {
            expect(ENVIRONMENT as readonly string[], `${overlay}: ${variable.name}`).toContain(
              variable.name,
            );
            if (variable.valueFrom?.secretKeyRef)
              secrets.add(
                `${variable.valueFrom.secretKeyRef.name}/${variable.valueFrom.secretKeyRef.key}`,
              );
          }
          for (const source of container.envFrom ?? []) secrets.add(`${source.secretRef.name}/*`);
        }
      }
    }
    const docs = readFileSync(join(ROOT, 'docs', 'kubernetes.md'), 'utf8');
    for (const secret of secrets)
      expect(docs, `docs/kubernetes.md names ${secret}`).toContain(secret.split('/')[0] as string);
  });

  it('keeps the plain files what manifests/base and manifests/base/run render now', () => {
    // The run's ConfigMap is made from a copy of the image's tasker.sh: the same script.
    expect(
      readFileSync(join(ROOT, TASKER_SCRIPT.copy), 'utf8'),
      `${TASKER_SCRIPT.copy} drifted from ${TASKER_SCRIPT.source}: run node dist/scripts/plainManifests.js`,
    ).toBe(readFileSync(join(ROOT, TASKER_SCRIPT.source), 'utf8'));
    for (const { file, text } of plainFiles()) {
      expect(
        readFileSync(join(MANIFESTS, file), 'utf8'),
        `${file} drifted: run npm run build && node dist/scripts/plainManifests.js`,
      ).toBe(text);
    }
  });

  it('the plain files, applied in order, hold everything the base and a run make', () => {
    const onDisk = PLAIN.map((plain) =>
      parseAllDocuments(readFileSync(join(MANIFESTS, plain.file), 'utf8')).map(
        (document) => document.toJSON() as K8sObject,
      ),
    );
    const key = (object: K8sObject) => `${object.kind}/${object.metadata.name}`;
    const shipped = onDisk.flat().map(key);
    const made = [...rendered('base'), ...rendered('base/run')].map(key);
    expect(shipped.toSorted()).toEqual(made.toSorted());
    // Each file applies on its own once the ones before it have: the namespace comes first, and
    // what a file's pods mount (the claim, the script) comes in an earlier file.
    expect(onDisk[0]?.map(key)).toEqual(['Namespace/warren']);
    const before = new Set<string>();
    for (const objects of onDisk) {
      for (const object of objects) {
        if (object.kind !== 'Namespace')
          expect(object.metadata.namespace, key(object)).toBe('warren');
        for (const volume of object.spec?.template?.spec?.volumes ?? []) {
          if (volume.persistentVolumeClaim)
            expect(before, key(object)).toContain(
              `PersistentVolumeClaim/${volume.persistentVolumeClaim.claimName}`,
            );
          if (volume.configMap)
            expect(before, key(object)).toContain(`ConfigMap/${volume.configMap.name}`);
        }
      }
      for (const object of objects) before.add(key(object));
    }
  });

  it('names images by the tag scripts/kube/build-images.sh gives: the package version', () => {
    const script = readFileSync(join(ROOT, 'scripts', 'kube', 'build-images.sh'), 'utf8');
    expect(script).toContain(`require('./package.json').version`);
    for (const plain of PLAIN) {
      const text = readFileSync(join(MANIFESTS, plain.file), 'utf8');
      for (const match of text.matchAll(/image: (warren-\w+)(:\S+)?/g))
        expect(match[0], plain.file).toBe(`image: ${match[1]}:${VERSION}`);
    }
  });
});

describe('what the components and the run change', () => {
  const byKind = (objects: readonly K8sObject[], kind: string, name: string) =>
    objects.find((object) => object.kind === kind && object.metadata.name === name) as K8sObject;

  it.each([
    ['overlays/cloud', ['Deployment warren-worker']],
    ['overlays/cloud-drain', ['Deployment warren-worker', 'Job warren-drain-workers']],
    ['overlays/cloud-keda-jobs', ['Deployment warren-worker', 'ScaledJob warren-drain-workers']],
    ['overlays/cloud/run', ['Job warren-tasker']],
  ])('%s: S3 settings reach every container that runs Warren (%j)', (overlay, expected) => {
    const workloads = podSpecs(rendered(overlay));
    expect(workloads.map(({ owner }) => `${owner.kind} ${owner.metadata.name}`).toSorted()).toEqual(
      expected.toSorted(),
    );
    for (const { owner, template } of workloads)
      for (const container of template.spec.containers)
        expect(container.envFrom, `${owner.kind} ${owner.metadata.name}`).toContainEqual({
          secretRef: { name: 'warren-s3' },
        });
  });

  it('with KEDA, the Deployment says no replicas: a re-apply leaves a scaled-out fleet alone', () => {
    expect(byKind(rendered('base'), 'Deployment', 'warren-worker').spec.replicas).toBe(2);
    const cloud = rendered('overlays/cloud');
    expect(byKind(cloud, 'ScaledObject', 'warren-worker')).toBeTruthy();
    expect(byKind(cloud, 'Deployment', 'warren-worker').spec).not.toHaveProperty('replicas');
  });

  it('size classes: a large worker on its own queue, with more memory, scaled by KEDA on that queue', () => {
    const objects = rendered('../test/fixtures/kube/size-classes');
    const small = byKind(objects, 'Deployment', 'warren-worker').spec.template.spec.containers[0];
    const large = byKind(objects, 'Deployment', 'warren-worker-large');
    const [worker] = large.spec.template.spec.containers;
    const sizeClass = (worker.args as string[])
      .find((arg) => arg.startsWith('--class='))
      ?.slice('--class='.length);
    expect(sizeClass).toBe('large');
    // Memory request = limit, and more of it than the default class has.
    const { requests, limits } = worker.resources;
    expect(limits.memory).toBe(requests.memory);
    const gi = (quantity: string) => Number(quantity.replace(/Gi$/, ''));
    expect(gi(requests.memory)).toBeGreaterThan(gi(small.resources.requests.memory));
    // Each class's ScaledObject watches the queue the code derives for it (no WARREN_QUEUE is set).
    expect(worker.env.map((v: K8sObject) => v.name)).not.toContain('WARREN_QUEUE');
    const trigger = (name: string) =>
      byKind(objects, 'ScaledObject', name).spec.triggers[0].metadata.queueName;
    expect(trigger('warren-worker')).toBe(classQueue(NAMES.taskQueue, 'default'));
    expect(trigger('warren-worker-large')).toBe(classQueue(NAMES.taskQueue, sizeClass));
    expect(byKind(objects, 'ScaledObject', 'warren-worker-large').spec.scaleTargetRef.name).toBe(
      'warren-worker-large',
    );
    expect(large.spec).not.toHaveProperty('replicas');
    // The components listed after it reach the large workers too.
    expect(worker.envFrom).toContainEqual({ secretRef: { name: 'warren-s3' } });
    expect(byKind(objects, 'PodDisruptionBudget', 'warren-worker-large')).toBeTruthy();
    // The run's tasker lists the classes, smallest first, the large worker's among them.
    const [tasker] = byKind(
      rendered('../test/fixtures/kube/size-classes/run'),
      'Job',
      'warren-tasker',
    ).spec.template.spec.containers;
    const listed = tasker.env.find((v: K8sObject) => v.name === 'WARREN_CLASSES')?.value;
    expect(loadClasses({ WARREN_CLASSES: listed }, undefined)).toEqual(['default', sizeClass]);
  });

  it('KEDA replaces its worker Jobs gradually, and they are drain-mode workers', () => {
    const scaled = byKind(
      rendered('overlays/cloud-keda-jobs'),
      'ScaledJob',
      'warren-drain-workers',
    );
    expect(scaled.spec.rollout).toEqual({ strategy: 'gradual' });
    const [worker] = scaled.spec.jobTargetRef.template.spec.containers;
    expect(worker.args).toContain('--exit-when-idle=5m');
    expect(scaled.spec.jobTargetRef.template.spec.restartPolicy).toBe('Never');
  });

  it('the tasker Job runs tasker.sh from a ConfigMap, and a node drain does not use up its retries', () => {
    const run = rendered('base/run');
    const job = byKind(run, 'Job', 'warren-tasker');
    const pod = job.spec.template.spec;
    const [tasker] = pod.containers;
    const mount = tasker.volumeMounts.find(
      (m: K8sObject) => m.mountPath === '/opt/warren/tasker.sh',
    );
    expect(mount).toMatchObject({ subPath: 'tasker.sh', readOnly: true });
    const volume = pod.volumes.find((v: K8sObject) => v.name === mount.name);
    expect(volume.configMap).toEqual({ name: 'warren-tasker-script', defaultMode: 0o555 });
    const script = byKind(run, 'ConfigMap', 'warren-tasker-script');
    expect(script.data['tasker.sh']).toBe(readFileSync(join(ROOT, 'tasker', 'tasker.sh'), 'utf8'));
    expect(job.spec.podFailurePolicy.rules).toContainEqual({
      action: 'Ignore',
      onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }],
    });
    // Applied together with the broker, it waits for it longer than the default 30 s.
    expect(tasker.env).toContainEqual({ name: 'WARREN_CONNECT_TIMEOUT', value: '10m' });
  });

  it('drain-mode workers: restartPolicy Never, node drains not counted, bad configuration fails at once', () => {
    const job = byKind(rendered('overlays/cloud-drain'), 'Job', 'warren-drain-workers');
    expect(job.spec.template.spec.restartPolicy).toBe('Never');
    expect(job.spec).not.toHaveProperty('completions');
    expect(job.spec.podFailurePolicy.rules).toEqual([
      { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
      { action: 'FailJob', onExitCodes: { containerName: 'worker', operator: 'In', values: [2] } },
    ]);
    expect(job.spec.template.spec.containers[0].args).toContain('--exit-when-idle=30m');
  });

  it('workers: no API token, not evicted by the cluster autoscaler, a drain takes one at a time', () => {
    for (const overlay of ['base', 'overlays/cloud-drain', 'overlays/cloud-keda-jobs'])
      for (const { owner, template } of podSpecs(rendered(overlay))) {
        const where = `${overlay}: ${owner.kind} ${owner.metadata.name}`;
        expect(template.spec.automountServiceAccountToken, where).toBe(false);
        expect(
          template.metadata.annotations['cluster-autoscaler.kubernetes.io/safe-to-evict'],
          where,
        ).toBe('false');
        for (const volume of template.spec.volumes)
          if (volume.emptyDir)
            expect(volume.emptyDir.sizeLimit, `${where}: ${volume.name}`).toBeTruthy();
      }
    const base = rendered('base');
    const budget = byKind(base, 'PodDisruptionBudget', 'warren-worker');
    expect(budget.spec.maxUnavailable).toBe(1);
    expect(byKind(base, 'Deployment', 'warren-worker').spec.template.metadata.labels).toMatchObject(
      budget.spec.selector.matchLabels,
    );
  });
});

describe('the least-privilege component', () => {
  /** docs/security.md's permission table: user → [configure, write, read]. */
  function documented(): Map<string, string[]> {
    const doc = readFileSync(join(ROOT, 'docs', 'security.md'), 'utf8');
    const rows = new Map<string, string[]>();
    for (const match of doc.matchAll(/^\| (tasker|worker) \| `(.+?)` \| `(.+?)` \| `(.+?)` \|$/gm))
      rows.set(
        match[1] as string,
        [match[2], match[3], match[4]].map((r) => r?.replaceAll('\\|', '|') as string),
      );
    return rows;
  }

  it('gives the tasker and the workers the permissions docs/security.md lists (and a test checks on a broker)', () => {
    const objects = rendered('../test/fixtures/kube/least-privilege-cloud-drain');
    const table = documented();
    expect([...table.keys()]).toEqual(['tasker', 'worker']);
    for (const [user, [configure, write, read]] of table) {
      const permission = objects.find(
        (object) =>
          object.kind === 'Permission' && object.spec.userReference.name === `warren-${user}`,
      ) as K8sObject;
      expect(permission.spec.permissions, user).toEqual({ configure, write, read });
      expect(permission.spec.vhost).toBe('/');
      expect(objects.some((o) => o.kind === 'User' && o.metadata.name === `warren-${user}`)).toBe(
        true,
      );
    }
    // KEDA reads the queue's length over the management API, and may touch no queue.
    const keda = objects.find(
      (o) => o.kind === 'Permission' && o.metadata.name === 'warren-keda',
    ) as K8sObject;
    expect(keda.spec.permissions).toEqual({ configure: '^$', write: '^$', read: '^$' });
  });

  it.each([
    ['least-privilege-cloud-drain', 'warren-worker', 2],
    ['least-privilege-cloud-keda-jobs', 'warren-worker', 2],
    ['least-privilege-cloud-run', 'warren-tasker', 1],
  ])('%s: every container connects as %s', (fixture, user, count) => {
    const workloads = podSpecs(rendered(`../test/fixtures/kube/${fixture}`));
    expect(workloads).toHaveLength(count);
    for (const { owner, template } of workloads)
      for (const container of template.spec.containers) {
        const from = (name: string) =>
          container.env.find((v: K8sObject) => v.name === name)?.valueFrom?.secretKeyRef;
        const where = `${owner.kind} ${owner.metadata.name}`;
        expect(from('RABBITMQ_USER'), where).toEqual({
          name: `${user}-user-credentials`,
          key: 'username',
        });
        expect(from('RABBITMQ_PASS'), where).toEqual({
          name: `${user}-user-credentials`,
          key: 'password',
        });
        // Only the broker's address from the administrator's Secret.
        const admin = container.env.filter(
          (v: K8sObject) => v.valueFrom?.secretKeyRef?.name === 'warren-rabbitmq-default-user',
        );
        expect(admin.map((v: K8sObject) => v.valueFrom.secretKeyRef.key).toSorted(), where).toEqual(
          ['host', 'port'],
        );
      }
  });
});
