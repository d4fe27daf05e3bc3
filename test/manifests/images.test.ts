import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { hostPath, readImage, whichInImage } from '../helpers/image.js';

const IMAGES = ['Dockerfile.tasker', 'Dockerfile.worker'];

const packageJson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
};

/** Every .js file under a directory. */
function scripts(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.js'))
    .map((name) => join(dir, name));
}

describe('the Dockerfiles, against the build output (`npm run build`)', () => {
  it.each(IMAGES)('%s copies only what exists, and everything the build compiles', (file) => {
    const image = readImage(file);
    for (const source of image.contextCopies)
      expect(existsSync(join(ROOT, source)), `${file}: COPY ${source}`).toBe(true);
    // What tsconfig.build.json compiles must be in the build stage, or the image's build fails.
    const { include } = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as {
      include: string[];
    };
    expect(image.contextCopies).toEqual(expect.arrayContaining(include));
    for (const [path, origin] of image.paths)
      expect(existsSync(origin), `${file}: ${path} comes from ${origin}`).toBe(true);
  });

  it.each(IMAGES)(
    '%s: the entrypoint and every linked program run (exist, executable, with an interpreter)',
    (file) => {
      const image = readImage(file);
      expect(image.entrypoint.slice(0, 2), `${file}: tini reaps tasks' orphans`).toEqual([
        'tini',
        '--',
      ]);
      expect(image.aptPackages).toContain('tini');
      const programs = [image.entrypoint[2] as string, ...[...image.links.keys()]];
      for (const program of programs) {
        const path = whichInImage(image, program);
        expect(path, `${file}: ${program}`).toBeDefined();
        const target = path as string;
        expect(statSync(target).isFile(), `${file}: ${program} → ${target}`).toBe(true);
        expect(() => accessSync(target, constants.X_OK), `${target} is executable`).not.toThrow();
        expect(readFileSync(target, 'utf8')).toMatch(
          /^#!\/(usr\/bin\/env (-S )?node( --[\w-]+=\w+)*|bin\/sh)\n/,
        );
      }
      // The image's own CLIs are the package's bins.
      const bins = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).bin as Record<
        string,
        string
      >;
      for (const [name, path] of Object.entries(bins))
        expect(hostPath(image, `/usr/local/bin/${name}`), name).toBe(join(ROOT, path));
      // Runs as the non-root user the manifests expect.
      expect(image.user).toBe('1000:1000');
    },
  );

  it('the compiled CLIs import only production dependencies (the images prune the rest)', () => {
    const allowed = new Set([...Object.keys(packageJson.dependencies), ...builtinModules]);
    const missing: string[] = [];
    for (const dir of ['shared', 'tasker', 'worker']) {
      for (const file of scripts(join(ROOT, 'dist', dir))) {
        const text = readFileSync(file, 'utf8');
        for (const match of text.matchAll(/(?:from|import\()\s*['"]([^'"./][^'"]*)['"]/g)) {
          const specifier = (match[1] as string).replace(/^node:/, '');
          const name = specifier.startsWith('@')
            ? specifier.split('/').slice(0, 2).join('/')
            : (specifier.split('/')[0] as string);
          if (!allowed.has(name)) missing.push(`${file}: ${specifier}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('the example study image extends the worker without replacing its entrypoint or user', () => {
    const image = readImage('examples/worker-image/Dockerfile');
    expect(readFileSync(join(ROOT, 'examples/worker-image/Dockerfile'), 'utf8')).toMatch(
      /^FROM \$\{WARREN_WORKER\}$/m,
    );
    expect(image.entrypoint).toEqual([]);
    expect(image.cmd).toEqual([]);
    expect(image.user).toBe('1000:1000');
  });
});
