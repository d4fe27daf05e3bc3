import { join } from 'node:path';
import { render } from '../../scripts/plainManifests.js';
import { ROOT } from './cli.js';

/** A rendered Kubernetes object: untyped YAML, whose shape the tests check as they walk it. */
// biome-ignore lint/suspicious/noExplicitAny: rendered YAML is walked field by field, and checked
export type K8sObject = Record<string, any>;

/** The objects `kubectl kustomize manifests/<path>` renders. */
export const rendered = (path: string): K8sObject[] =>
  render(join(ROOT, 'manifests', path)) as K8sObject[];
