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
import { Namespace, PersistentVolume, PersistentVolumeClaim } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { PLAIN, plainText, render } from '../../scripts/plainManifests.js';
import { ENVIRONMENT } from '../../shared/config/environment.js';
import { FIXTURES, ROOT } from '../helpers/cli.js';
import { type K8sObject, rendered } from '../helpers/kube.js';

const MANIFESTS = join(ROOT, 'manifests');
const OVERLAYS = [
  'base',
  'overlays/minikube',
  'overlays/cloud',
  'overlays/cloud-drain',
  'overlays/cloud-keda-jobs',
];

const rabbitmqCluster = new Ajv({ allErrors: true, strict: false }).compile(
  JSON.parse(readFileSync(join(FIXTURES, 'rabbitmqcluster.schema.json'), 'utf8')),
);

/** Validates an object against its kind's schema: Kubernetes', KEDA's, or the RabbitmqCluster one. */
function validate(object: K8sObject): void {
  const models: Record<string, new (data: never) => { validate(): void }> = {
    'v1/Namespace': Namespace,
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
    expect(objects.length).toBeGreaterThan(3);
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

  it('keeps tasker.yml and worker.yml what the base renders', () => {
    const base = rendered('base');
    for (const plain of PLAIN) {
      expect(
        readFileSync(join(MANIFESTS, plain.file), 'utf8'),
        `${plain.file} drifted: run node dist/scripts/plainManifests.js`,
      ).toBe(plainText(base, plain.kind, plain.header));
    }
  });
});
