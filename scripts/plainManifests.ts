/**
 * Writes the plain manifests, the numbered files people apply one by one with `kubectl apply -f`
 * (manifests/00-namespace.yml ... 50-tasker.yml), from the kustomize base (manifests/base, and
 * manifests/base/run for a run): `npm run build && node dist/scripts/plainManifests.js`. It first
 * copies tasker/tasker.sh into manifests/base/run (kustomize reads no file outside a
 * kustomization's directory). A test checks that all of them match, so they never drift.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Document, isScalar, parseAllDocuments } from 'yaml';

/** The repository: above scripts/ when run from source (the tests), above dist/scripts/ when built. */
const ROOT = existsSync(resolve(import.meta.dirname, '..', 'package.json'))
  ? resolve(import.meta.dirname, '..')
  : resolve(import.meta.dirname, '..', '..');

/** The tasker script in the image, and its copy the run's ConfigMap is made from. */
export const TASKER_SCRIPT = { source: 'tasker/tasker.sh', copy: 'manifests/base/run/tasker.sh' };

/** One plain file: the kinds of objects it takes from a kustomization, and what it is for. */
export interface PlainFile {
  readonly file: string;
  /** The kustomization under manifests/ the objects come from. */
  readonly from: 'base' | 'base/run';
  readonly kinds: readonly string[];
  readonly header: readonly string[];
}

const MADE =
  '# Made from manifests/base by scripts/plainManifests.ts: change the base, then run it again.';

/** The plain files, in the order they are applied. */
export const PLAIN: readonly PlainFile[] = [
  {
    file: '00-namespace.yml',
    from: 'base',
    kinds: ['Namespace'],
    header: ['# The namespace `warren`, held to the restricted Pod Security Standard.', MADE],
  },
  {
    file: '10-rabbitmq.yml',
    from: 'base',
    kinds: ['RabbitmqCluster'],
    header: [
      '# The broker: needs the RabbitMQ cluster operator (docs/kubernetes.md). It makes the Service',
      '# warren-rabbitmq and the Secret warren-rabbitmq-default-user the tasker and workers use.',
      MADE,
    ],
  },
  {
    file: '20-storage.yml',
    from: 'base',
    kinds: ['PersistentVolumeClaim'],
    header: [
      '# The shared working directory: a ReadWriteMany claim on the default storage class (set',
      '# `storageClassName` for another; docs/kubernetes.md, "Storage").',
      MADE,
    ],
  },
  {
    file: '30-workers.yml',
    from: 'base',
    kinds: ['Deployment', 'PodDisruptionBudget'],
    header: [
      '# The workers. Set your study image (built FROM warren-worker) on the `image:` line, and',
      '# the number of workers in `replicas` (or `scripts/kube/scale.sh N`); then apply.',
      MADE,
    ],
  },
  {
    file: '40-tasker-script.yml',
    from: 'base/run',
    kinds: ['ConfigMap'],
    header: [
      "# tasker.sh, what a run does (the example study's script). To run yours instead:",
      '#   kubectl -n warren create configmap warren-tasker-script --from-file=tasker.sh=./tasker.sh \\',
      '#     --dry-run=client -o yaml | kubectl apply -f -',
      '# (or `scripts/kube/start-run.sh --script ./tasker.sh`).',
      MADE,
    ],
  },
  {
    file: '50-tasker.yml',
    from: 'base/run',
    kinds: ['Job'],
    header: [
      '# The tasker Job: one run of your study. Set your tasker image (built FROM warren-tasker,',
      '# with what tasker.sh runs) on the `image:` line. Start a run with scripts/kube/start-run.sh,',
      "# which deletes the last run's Job first (a Job's pod template cannot change).",
      MADE,
    ],
  },
];

/** Said on the `image:` line of each plain workload, where people look for it. */
const IMAGE_COMMENT: Readonly<Record<string, string>> = {
  Deployment: ' your study image, FROM warren-worker (docs/kubernetes.md, "Images")',
  Job: ' your tasker image, FROM warren-tasker (docs/kubernetes.md, "Images")',
};

/** The rendered objects of a kustomization directory. */
export function render(dir: string): Record<string, unknown>[] {
  const text = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  return parseAllDocuments(text).map((document) => document.toJSON() as Record<string, unknown>);
}

/** The text of one plain file, from its kustomization's rendered objects. */
export function plainText(objects: readonly Record<string, unknown>[], plain: PlainFile): string {
  const chosen = objects.filter((object) => plain.kinds.includes(object.kind as string));
  if (chosen.length === 0) throw new Error(`manifests/${plain.from} renders no ${plain.kinds}`);
  const documents = chosen.map((object) => {
    const document = new Document(object);
    const image = document.getIn(['spec', 'template', 'spec', 'containers', 0, 'image'], true);
    const comment = IMAGE_COMMENT[object.kind as string];
    if (isScalar(image) && comment) image.comment = comment;
    return document.toString({ lineWidth: 0 });
  });
  return `${plain.header.join('\n')}\n${documents.join('---\n')}`;
}

/** Every plain file's name and text, rendered now from manifests/base and manifests/base/run. */
export function plainFiles(root = ROOT): { file: string; text: string }[] {
  const rendered = new Map<string, Record<string, unknown>[]>();
  return PLAIN.map((plain) => {
    let objects = rendered.get(plain.from);
    if (!objects) {
      objects = render(join(root, 'manifests', plain.from));
      rendered.set(plain.from, objects);
    }
    return { file: plain.file, text: plainText(objects, plain) };
  });
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  writeFileSync(
    join(ROOT, TASKER_SCRIPT.copy),
    readFileSync(join(ROOT, TASKER_SCRIPT.source), 'utf8'),
  );
  console.log(`wrote ${TASKER_SCRIPT.copy}`);
  for (const { file, text } of plainFiles()) {
    writeFileSync(join(ROOT, 'manifests', file), text);
    console.log(`wrote manifests/${file}`);
  }
}
