import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A memory cgroup of the test's own with a hard limit (cgroup v2 where this machine has its
 * memory controller there, else v1), or undefined where this process may not make one.
 */
export function memoryCgroup(limit: number): { procs: string; remove: () => void } | undefined {
  const name = `warren-test-${process.pid}-${Date.now()}-${Math.random().toString(16).slice(2, 6)}`;
  const self = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  const v2 = self.find((line) => line.startsWith('0::'))?.slice(3);
  const v1 = self.find((line) => line.split(':')[1]?.split(',').includes('memory'))?.split(':')[2];
  const attempts: (() => string)[] = [];
  if (v2 !== undefined && existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    attempts.push(() => {
      const parent = join('/sys/fs/cgroup', v2);
      const dir = join(parent, name);
      mkdirSync(dir);
      writeFileSync(join(dir, 'memory.max'), String(limit));
      writeFileSync(join(dir, 'memory.swap.max'), '0');
      return dir;
    });
  }
  if (v1 !== undefined) {
    attempts.push(() => {
      const dir = join('/sys/fs/cgroup/memory', v1, name);
      mkdirSync(dir);
      writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limit));
      try {
        writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), String(limit));
      } catch {
        // no swap accounting: fine where there is no swap
      }
      return dir;
    });
  }
  for (const attempt of attempts) {
    try {
      const made = attempt();
      return { procs: join(made, 'cgroup.procs'), remove: () => rmdirSync(made) };
    } catch {
      // not allowed here; try the next kind
    }
  }
  return undefined;
}
