import { mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, posix } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { STAND_IN_BIN } from './cli.js';
import { hostPath, type ImageModel, whichInImage } from './image.js';
import type { K8sObject } from './kube.js';

/** What the cluster would give a pod: volumes, secrets, downward-API fields, ports. */
export interface PodWorld {
  /** Volume name → the directory behind it here. */
  readonly volumes: Readonly<Record<string, string>>;
  /** Secret name → its keys. */
  readonly secrets: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Downward-API field path → its value. */
  readonly fields: Readonly<Record<string, string>>;
  /** Container port → the port used here instead. */
  readonly ports?: Readonly<Record<number, number>>;
  /** Variables set on top (isolation from other tests only, never what the YAML should set). */
  readonly extraEnv?: Readonly<Record<string, string>>;
}

/** How a container would start: program (a path here), arguments, environment, directory. */
export interface ContainerLaunch {
  readonly program: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
}

/**
 * Works out how Kubernetes would start `container` of `pod` from `image`: its command from the
 * image's ENTRYPOINT and CMD and the container's `command`/`args` (Kubernetes' rules), its
 * environment from the image, `env` and `envFrom` (secrets and downward-API fields resolved, as
 * the kubelet would), with the container's mount paths mapped onto the world's directories
 * (a `subPath` mount onto that entry of its volume's directory).
 * Throws what the kubelet would refuse: a missing secret or key, an unknown field, an unmounted
 * volume.
 */
export function launchOf(
  image: ImageModel,
  pod: K8sObject,
  container: K8sObject,
  world: PodWorld,
): ContainerLaunch {
  const mounts: [string, string][] = (container.volumeMounts ?? []).map((mount: K8sObject) => {
    if (!pod.volumes?.some((volume: K8sObject) => volume.name === mount.name))
      throw new Error(`mount ${mount.mountPath}: the pod has no volume ${mount.name}`);
    const dir = world.volumes[mount.name];
    if (!dir) throw new Error(`volume ${mount.name}: the test gives it no directory`);
    // A subPath mount puts one entry of the volume at the mount path (a ConfigMap's key, say).
    return [mount.mountPath, mount.subPath ? join(dir, mount.subPath) : dir];
  });
  mounts.sort(([a], [b]) => b.length - a.length);
  const mapPath = (path: string): string => {
    for (const [mountPath, dir] of mounts) {
      if (path === mountPath) return dir;
      if (path.startsWith(`${mountPath}/`)) return join(dir, posix.relative(mountPath, path));
    }
    return path;
  };
  const ports = new Map<string, string>(
    (container.ports ?? []).map((port: K8sObject) => [
      String(port.containerPort),
      String(world.ports?.[port.containerPort] ?? port.containerPort),
    ]),
  );
  const mapValue = (value: string): string => ports.get(value) ?? mapPath(value);
  const mapArg = (arg: string): string => {
    const flag = /^(--[^=]+=)(.*)$/.exec(arg);
    return flag ? `${flag[1]}${mapValue(flag[2] as string)}` : mapPath(arg);
  };

  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(image.env)) env[name] = mapPath(value);
  Object.assign(env, containerEnv(container, world, mapValue));

  // Kubernetes: `command` replaces ENTRYPOINT (and drops CMD); `args` replaces CMD.
  const words = container.command
    ? [...container.command, ...(container.args ?? [])]
    : [...image.entrypoint, ...(container.args ?? image.cmd)];
  if (words[0] === 'tini' && words[1] === '--') {
    if (!image.aptPackages.includes('tini'))
      throw new Error(`${image.file} runs tini without installing it`);
    words.splice(0, 2);
  }
  const [name, ...args] = words;
  // A program at a mounted path is the volume's (a ConfigMap mounted over the image's script).
  const mounted = name?.startsWith('/') && mapPath(name) !== name ? mapPath(name) : undefined;
  const program = mounted ?? (name ? whichInImage(image, name) : undefined);
  if (!program) throw new Error(`${image.file}: \`${name}\` is not in the image`);

  // The image's own programs (its links in bin directories), then the stand-ins, then this
  // machine's (node, sh, cp).
  const bin = mkdtempSync(join(tmpdir(), 'warren-image-bin-'));
  for (const [link] of image.links) {
    const target = hostPath(image, link);
    if (target && /\/bin\/[^/]+$/.test(link)) symlinkSync(target, join(bin, posix.basename(link)));
  }
  env.PATH = [bin, STAND_IN_BIN, process.env.PATH ?? ''].join(delimiter);
  for (const [name, value] of Object.entries(world.extraEnv ?? {})) env[name] = value;

  const cwd = mapPath(container.workingDir ?? image.workdir);
  mkdirSync(cwd, { recursive: true });
  return { program, args: args.map(mapArg), env, cwd };
}

/** Starts a container as its own process group, so it can be killed whole, as a pod dies. */
export function startContainer(launch: ContainerLaunch): ResultPromise<{ reject: false }> {
  return execa(launch.program, launch.args, {
    cwd: launch.cwd,
    env: launch.env,
    extendEnv: false,
    reject: false,
    detached: true,
  }) as ResultPromise<{ reject: false }>;
}

/**
 * A container's `envFrom` and `env`, resolved as the kubelet would: secrets' keys, downward-API
 * fields, plain values through `mapValue` (ports and paths of the test's world). Throws what the
 * kubelet would refuse: a missing secret or key (unless optional), an unknown field.
 */
export function containerEnv(
  container: K8sObject,
  world: Pick<PodWorld, 'secrets' | 'fields'>,
  mapValue: (value: string) => string = (value) => value,
): Record<string, string> {
  const secretKey = (name: string, key?: string, optional = false): string | undefined => {
    const secret = world.secrets[name];
    if (!secret) {
      if (optional) return undefined;
      throw new Error(`secret ${name} does not exist: the pod would not start`);
    }
    if (key === undefined) return '';
    const value = secret[key];
    if (value === undefined && !optional)
      throw new Error(`secret ${name} has no key ${key}: the pod would not start`);
    return value;
  };

  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    const ref = source.secretRef;
    if (!ref) throw new Error('envFrom: only secretRef is modelled');
    if (secretKey(ref.name, undefined, ref.optional) === undefined) continue;
    Object.assign(env, world.secrets[ref.name]);
  }
  for (const variable of container.env ?? []) {
    const from = variable.valueFrom;
    if (!from) {
      env[variable.name] = mapValue(String(variable.value ?? ''));
    } else if (from.secretKeyRef) {
      const ref = from.secretKeyRef;
      const value = secretKey(ref.name, ref.key, ref.optional);
      if (value !== undefined) env[variable.name] = value;
    } else if (from.fieldRef) {
      const value = world.fields[from.fieldRef.fieldPath];
      if (value === undefined) throw new Error(`no value for field ${from.fieldRef.fieldPath}`);
      env[variable.name] = value;
    } else {
      throw new Error(`${variable.name}: only secretKeyRef and fieldRef are modelled`);
    }
  }
  return env;
}
