import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FIXTURES, ROOT, tempDir } from '../helpers/cli.js';
import { deleteQueues, queueDepth, testQueue, withChannel } from '../helpers/fleet.js';

const SCRIPTS = join(ROOT, 'scripts', 'kube');
const ctl = inject('rabbitmqCtl');

/**
 * Runs an operator script with the stand-in kubectl (test/fixtures/kube): what it would run in
 * the cluster is logged, and `kubectl exec ... rabbitmqctl` runs against the test broker.
 */
async function script(name: string, args: string[], env: Record<string, string> = {}) {
  const scratch = tempDir('warren-kube-');
  const log = join(scratch.dir, 'kubectl.log');
  try {
    const result = await execa(join(SCRIPTS, name), args, {
      reject: false,
      env: {
        PATH: `${join(FIXTURES, 'kube')}${delimiter}${process.env.PATH ?? ''}`,
        KUBECTL_LOG: log,
        TEST_RABBITMQCTL: ctl.join(' '),
        ...env,
      },
    });
    const calls = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
    return { ...result, calls };
  } finally {
    scratch.cleanup();
  }
}

/** Bad input: exit 2, one line, and nothing changed in the cluster. */
function expectUsageError(result: Awaited<ReturnType<typeof script>>, text: RegExp) {
  expect(result.exitCode).toBe(2);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(text);
  expect(result.calls.filter((call) => /create|delete|apply|scale|purge_queue/.test(call))).toEqual(
    [],
  );
}

describe.skipIf(ctl.length === 0)('scripts/kube/queues.sh, through rabbitmqctl', () => {
  const queue = testQueue();
  beforeAll(async () => {
    await withChannel(async (channel) => {
      await channel.assertQueue(queue, { durable: true });
      for (let i = 0; i < 3; i += 1) channel.sendToQueue(queue, Buffer.from(`task ${i}`));
      await channel.checkQueue(queue);
    });
  });
  afterAll(() => deleteQueues(queue));

  it('lists Warren queues with their waiting and running tasks and consumers', async () => {
    const result = await script('queues.sh', ['list']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.calls[0]).toBe(
      '-n warren exec warren-rabbitmq-server-0 -c rabbitmq -- rabbitmqctl -q list_queues name type messages_ready messages_unacknowledged consumers',
    );
    const [header, ...rows] = result.stdout.trim().split('\n');
    expect(header?.split('\t')).toEqual([
      'name',
      'type',
      'messages_ready',
      'messages_unacknowledged',
      'consumers',
    ]);
    expect(rows.find((row) => row.startsWith(`${queue}\t`))?.split('\t')).toEqual([
      queue,
      'classic',
      '3',
      '0',
      '0',
    ]);
    expect(rows.every((row) => row.startsWith('warren.'))).toBe(true);
  });

  it('inspects one queue, and says so when there is no such queue', async () => {
    const result = await script('queues.sh', ['inspect', queue]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain(`${queue}\tclassic\ttrue\t3`);
    expect(result.stdout).toContain(`consumers of ${queue}:`);
    expectUsageError(
      await script('queues.sh', ['inspect', 'warren.nope']),
      /no queue named warren\.nope/,
    );
  });

  it('purges only with --yes, and only Warren queues', async () => {
    expectUsageError(await script('queues.sh', ['purge', queue]), /--yes/);
    expectUsageError(
      await script('queues.sh', ['purge', 'orders', '--yes']),
      /not one of Warren's/,
    );
    expect(await queueDepth(queue)).toBe(3);
    const result = await script('queues.sh', ['purge', queue, '--yes']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(await queueDepth(queue)).toBe(0);
  });
});

describe('the other operator scripts', () => {
  it('scale.sh sets the worker Deployment’s replicas, in WARREN_NAMESPACE if set', async () => {
    const result = await script('scale.sh', ['5']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.calls).toEqual(['-n warren scale deployment warren-worker --replicas 5']);
    const elsewhere = await script('scale.sh', ['1'], { WARREN_NAMESPACE: 'lab' });
    expect(elsewhere.calls).toEqual(['-n lab scale deployment warren-worker --replicas 1']);
    expectUsageError(await script('scale.sh', ['many']), /whole number, not `many`/);
  });

  it('start-run.sh deletes the last tasker Job and applies 50-tasker.yml; refuses while one runs', async () => {
    const result = await script('start-run.sh', []);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.calls.slice(1)).toEqual([
      '-n warren delete job warren-tasker --ignore-not-found --wait',
      expect.stringMatching(/^-n warren apply -f \S*manifests\/50-tasker\.yml$/),
    ]);
    const running = await script('start-run.sh', [], { KUBECTL_GET: '1' });
    expect(running.exitCode).toBe(4);
    expect(running.stderr).toMatch(/still running/);
    expect(running.calls.some((call) => / (delete|apply|create) /.test(call))).toBe(false);
  });

  it('start-run.sh --script replaces the tasker.sh ConfigMap first; -k applies a run kustomization', async () => {
    const own = join(FIXTURES, 'kube', 'own-script', 'tasker.sh');
    const run = join(ROOT, 'manifests', 'overlays', 'minikube', 'run');
    const result = await script('start-run.sh', ['--script', own, '-k', run]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.calls.slice(1)).toEqual([
      `-n warren create configmap warren-tasker-script --from-file=tasker.sh=${own} --dry-run=client -o yaml`,
      '-n warren apply -f -',
      '-n warren delete job warren-tasker --ignore-not-found --wait',
      `-n warren apply -k ${run}`,
    ]);
    expectUsageError(
      await script('start-run.sh', ['--script', '/nonexistent/tasker.sh']),
      /cannot read/,
    );
    const scratch = tempDir('warren-script-');
    try {
      const broken = join(scratch.dir, 'tasker.sh');
      writeFileSync(broken, 'if true; then\n');
      expectUsageError(await script('start-run.sh', ['--script', broken]), /not a valid sh script/);
    } finally {
      scratch.cleanup();
    }
  });

  it('logs.sh follows a component’s pods by label', async () => {
    const result = await script('logs.sh', ['tasker']);
    expect(result.calls).toEqual([
      '-n warren logs --follow --prefix --max-log-requests 50 --tail 100 -l app.kubernetes.io/part-of=warren,app.kubernetes.io/component=tasker',
    ]);
    expectUsageError(await script('logs.sh', ['wroker']), /unknown component `wroker`/);
  });

  it('secrets.sh makes a random signing key once, and leaves an existing one alone', async () => {
    const made = await script('secrets.sh', ['signing-key']);
    expect(made.exitCode, made.stderr).toBe(0);
    expect(made.calls[1]).toMatch(
      /^-n warren create secret generic warren-signing-key --from-literal=key=[0-9a-f]{64}$/,
    );
    const kept = await script('secrets.sh', ['signing-key'], {
      KUBECTL_GET: 'secret/warren-signing-key',
    });
    expect(kept.stdout).toContain('left as it is');
    expect(kept.calls.some((call) => call.includes('create'))).toBe(false);
  });

  it('build-images.sh checks its arguments before building anything', async () => {
    expectUsageError(await script('build-images.sh', ['--push']), /--push needs a registry/);
    expectUsageError(
      await script('build-images.sh', ['--push', 'registry.example.org', '--minikube']),
      /do not go together/,
    );
  });
});

describe('shell scripts', () => {
  it('pass shellcheck (POSIX sh: they run in the slim images and on macOS)', async () => {
    const files = [
      'tasker/tasker.sh',
      ...['build-images', 'logs', 'queues', 'scale', 'secrets', 'start-run'].map(
        (name) => `scripts/kube/${name}.sh`,
      ),
      'test/fixtures/kube/kubectl',
    ];
    const result = await execa('shellcheck', ['-x', ...files], { cwd: ROOT, reject: false });
    expect(result.exitCode, result.stdout || result.message).toBe(0);
  });
});
