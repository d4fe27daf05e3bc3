import { readFileSync } from 'node:fs';
import { basename, isAbsolute, join, posix } from 'node:path';
import { type Copy, DockerfileParser } from 'dockerfile-ast';
import { ROOT } from './cli.js';

/**
 * What a Dockerfile's final image holds, read without Docker: where each path of the image comes
 * from in this checkout (after `npm ci && npm run build`), its links, environment, working
 * directory and entrypoint. Enough to run the image's commands here, and to check that what it
 * copies exists.
 */
export interface ImageModel {
  readonly file: string;
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly workdir: string;
  readonly user: string;
  /** Packages the final stage installs with apt-get. */
  readonly aptPackages: readonly string[];
  /** Sources the build stages copy from the build context (repository paths). */
  readonly contextCopies: readonly string[];
  /** Image paths of the final stage, and the checkout paths they come from. */
  readonly paths: ReadonlyMap<string, string>;
  /** Symbolic links the final stage makes: link path → target path. */
  readonly links: ReadonlyMap<string, string>;
}

const jsonArray = (text: string, where: string): string[] => {
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed)) throw new Error(`${where}: use the JSON (exec) form`);
  return parsed.map(String);
};

/** Words of a RUN line, split on `&&`, into commands. */
const commandsOf = (words: readonly string[]): string[][] => {
  const commands: string[][] = [[]];
  for (const word of words) {
    if (word === '&&') commands.push([]);
    else commands.at(-1)?.push(word);
  }
  return commands;
};

/** Reads `file` (a Dockerfile at the repository root) into its final image. */
export function readImage(file: string): ImageModel {
  const dockerfile = DockerfileParser.parse(readFileSync(join(ROOT, file), 'utf8'));
  const outDir = (
    JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as {
      compilerOptions: { outDir: string };
    }
  ).compilerOptions.outDir;
  const stages = new Map<string, Map<string, string>>();
  let paths = new Map<string, string>();
  let links = new Map<string, string>();
  let env: Record<string, string> = {};
  let workdir = '/';
  let user = 'root';
  let entrypoint: string[] = [];
  let cmd: string[] = [];
  let aptPackages: string[] = [];
  const contextCopies: string[] = [];
  const at = (path: string) => (isAbsolute(path) ? path : posix.join(workdir, path));

  for (const instruction of dockerfile.getInstructions()) {
    const args = instruction.getArguments().map((arg) => arg.getValue());
    switch (instruction.getKeyword()) {
      case 'FROM': {
        paths = new Map();
        links = new Map();
        env = {};
        workdir = '/';
        aptPackages = [];
        const alias = args[2];
        if (alias) stages.set(alias, paths);
        break;
      }
      case 'WORKDIR':
        workdir = at(args[0] as string);
        break;
      case 'USER':
        user = args[0] as string;
        break;
      case 'ENV':
        for (const pair of args) {
          const [name, ...value] = pair.split('=');
          env[name as string] = value.join('=');
        }
        break;
      case 'COPY': {
        const from = (instruction as Copy).getFromFlag()?.getValue() ?? undefined;
        const words = args.filter((arg) => !arg.startsWith('--'));
        const dest = words.at(-1) as string;
        const sources = words.slice(0, -1);
        for (const source of sources) {
          const target =
            dest.endsWith('/') || sources.length > 1
              ? posix.join(at(dest), basename(source))
              : at(dest);
          if (from) {
            const stage = stages.get(from);
            const origin = stage ? resolveIn(stage, new Map(), source) : undefined;
            if (!origin)
              throw new Error(`${file}: COPY --from=${from} ${source}: not in that stage`);
            paths.set(target, origin);
          } else {
            contextCopies.push(source);
            paths.set(target, join(ROOT, source));
          }
        }
        break;
      }
      case 'RUN':
        for (const command of commandsOf(args)) {
          const [program, ...rest] = command;
          if (program === 'npm' && rest[0] === 'ci')
            paths.set(at('node_modules'), join(ROOT, 'node_modules'));
          if (program === 'npm' && rest[0] === 'run' && rest[1] === 'build')
            paths.set(at(outDir), join(ROOT, outDir));
          if (program === 'ln' && rest[0] === '-s') links.set(rest[2] as string, rest[1] as string);
          if (program === 'apt-get' && rest.includes('install'))
            aptPackages = [...aptPackages, ...rest.filter((word) => !/^-|^install$/.test(word))];
        }
        break;
      case 'ENTRYPOINT':
        entrypoint = jsonArray(instruction.getArgumentsContent() ?? '', `${file}: ENTRYPOINT`);
        break;
      case 'CMD':
        cmd = jsonArray(instruction.getArgumentsContent() ?? '', `${file}: CMD`);
        break;
    }
  }
  return { file, entrypoint, cmd, env, workdir, user, aptPackages, contextCopies, paths, links };
}

/** The checkout path behind an image path, following the image's links; undefined if none. */
function resolveIn(
  paths: ReadonlyMap<string, string>,
  links: ReadonlyMap<string, string>,
  path: string,
): string | undefined {
  const link = links.get(path);
  if (link) return resolveIn(paths, links, link);
  for (let prefix = path; prefix !== '/'; prefix = posix.dirname(prefix)) {
    const origin = paths.get(prefix);
    if (origin) return join(origin, posix.relative(prefix, path));
  }
  return undefined;
}

/** The checkout path behind a path of the final image; undefined if the image has none. */
export const hostPath = (image: ImageModel, path: string): string | undefined =>
  resolveIn(image.paths, image.links, path);

/** A program the image runs by name: found on the image's PATH (its links in bin directories). */
export function whichInImage(image: ImageModel, program: string): string | undefined {
  if (program.includes('/')) return hostPath(image, program);
  for (const dir of ['/usr/local/bin', '/usr/bin', '/bin']) {
    const found = hostPath(image, posix.join(dir, program));
    if (found) return found;
  }
  return undefined;
}
