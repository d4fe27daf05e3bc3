/**
 * Writes manifests/tasker.yml and manifests/worker.yml, the two files people apply by hand, from
 * the kustomize base: `npm run build && node dist/scripts/plainManifests.js`. A test checks they
 * match the base, so they never drift.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** The plain files, by name: what each holds and what it is for. */
export const PLAIN = [
  {
    file: 'tasker.yml',
    kind: 'Job',
    header: [
      '# The tasker Job: one run of your study (tasker.sh in the tasker image). Start a run with',
      '#   kubectl -n warren delete job warren-tasker --ignore-not-found',
      '#   kubectl apply -f manifests/tasker.yml',
      '# Made from manifests/base by scripts/plainManifests.ts: change the base, then run it again.',
    ],
  },
  {
    file: 'worker.yml',
    kind: 'Deployment',
    header: [
      '# The workers. Set `replicas` here (or `kubectl -n warren scale deployment warren-worker',
      '# --replicas N`) and `kubectl apply -f manifests/worker.yml`.',
      '# Made from manifests/base by scripts/plainManifests.ts: change the base, then run it again.',
    ],
  },
] as const;

/** The rendered objects of a kustomization directory. */
export function render(dir: string): Record<string, unknown>[] {
  const text = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  return parseAllDocuments(text).map((document) => document.toJSON() as Record<string, unknown>);
}

/** The text of a plain file, from the rendered base. */
export function plainText(
  objects: readonly Record<string, unknown>[],
  kind: string,
  header: readonly string[],
): string {
  const object = objects.find((candidate) => candidate.kind === kind);
  if (!object) throw new Error(`the base renders no ${kind}`);
  return `${header.join('\n')}\n${stringify(object, { lineWidth: 0 })}`;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const objects = render(join(ROOT, 'manifests', 'base'));
  for (const plain of PLAIN) {
    writeFileSync(
      join(ROOT, 'manifests', plain.file),
      plainText(objects, plain.kind, plain.header),
    );
    console.log(`wrote manifests/${plain.file}`);
  }
}
