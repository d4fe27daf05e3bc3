import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import semver from 'semver';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';

interface Manifest {
  readonly version?: string;
  readonly engines?: { readonly node?: string } | readonly string[];
  readonly dev?: boolean;
}

const read = (file: string) => JSON.parse(readFileSync(join(ROOT, file), 'utf8'));

describe('package.json engines', () => {
  it('every package that `npm ci` installs runs on every Node the project declares (no EBADENGINE)', () => {
    const declared: string = read('package.json').engines.node;
    expect(semver.validRange(declared), declared).not.toBeNull();
    const packages: Record<string, Manifest> = read('package-lock.json').packages;
    const misfits = Object.entries(packages).flatMap(([path, manifest]) => {
      // Old packages wrote engines as a list of strings, which npm does not check.
      const engines = manifest.engines;
      const wanted =
        engines && !Array.isArray(engines) ? (engines as { node?: string }).node : undefined;
      if (!path || !wanted || semver.subset(declared, wanted)) return [];
      return [`${path.replace(/^.*node_modules\//, '')}@${manifest.version}: node ${wanted}`];
    });
    expect(misfits, `the project declares node ${declared}`).toEqual([]);
  });

  it('declares the Node this machine runs, as the README says', () => {
    expect(semver.satisfies(process.version, read('package.json').engines.node)).toBe(true);
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toContain(
      `\`${read('package.json').engines.node}\``,
    );
  });
});
