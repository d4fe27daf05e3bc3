import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, PrivateNode } from '../helpers/broker.js';
import { logLines, processesIn, tasker, tempDir, waitFor, worker } from '../helpers/cli.js';
import { endsOf, ledgerOf } from '../helpers/ledger.js';
import { count } from './figures.js';

let node: PrivateNode;
let tlsPort: number;
let certs: string;
let dir: string;
let cleanup: () => void;

const KEY = 'a-signing-key-for-the-tests-0123456789';
const PASSWORD = 'S3cret-Pa55word-that-must-never-show';
/** configure, write, read: copied from docs/security.md. */
const TASKER_PERMISSIONS = [
  '^(warren\\..*|amq\\.gen-.*)$',
  '^(amq\\.default|warren\\..*|amq\\.gen-.*)$',
  '^(warren\\..*|amq\\.gen-.*)$',
];
const WORKER_PERMISSIONS = [
  '^(warren\\.worker\\..*|amq\\.gen-.*)$',
  '^(warren\\.results|amq\\.gen-.*)$',
  '^(warren\\.tasks(\\.class\\.[a-z0-9-]+)?|warren\\.control|amq\\.gen-.*)$',
];

/** A CA and a certificate for localhost signed by it, readable by the rabbitmq user. */
async function makeCertificates(): Promise<string> {
  const out = mkdtempSync(join(tmpdir(), 'warren-tls-'));
  chmodSync(out, 0o755);
  const sh = (script: string) => execa('sh', ['-c', script], { cwd: out });
  await sh(
    'openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj "/CN=warren-test-ca" 2>/dev/null',
  );
  await sh(
    'openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null',
  );
  writeFileSync(join(out, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  await sh(
    'openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile san.ext 2>/dev/null',
  );
  for (const name of readdirSync(out)) chmodSync(join(out, name), 0o644);
  return out;
}

beforeAll(async () => {
  certs = await makeCertificates();
  tlsPort = await freePort();
  node = await PrivateNode.start([
    `listeners.ssl.default = ${tlsPort}`,
    `ssl_options.cacertfile = ${join(certs, 'ca.pem')}`,
    `ssl_options.certfile = ${join(certs, 'server.pem')}`,
    `ssl_options.keyfile = ${join(certs, 'server.key')}`,
    'ssl_options.verify = verify_none',
    'ssl_options.fail_if_no_peer_cert = false',
  ]);
  await node.ctl('add_user', 'scientist', PASSWORD);
  await node.ctl('set_permissions', '-p', '/', 'scientist', '.*', '.*', '.*');
  await node.ctl('add_vhost', 'locked');
  // The least each side needs, as docs/security.md gives them.
  await node.ctl('add_user', 'tasker-u', PASSWORD);
  await node.ctl('set_permissions', '-p', '/', 'tasker-u', ...TASKER_PERMISSIONS);
  await node.ctl('add_user', 'worker-u', PASSWORD);
  await node.ctl('set_permissions', '-p', '/', 'worker-u', ...WORKER_PERMISSIONS);
  ({ dir, cleanup } = tempDir());
});

afterAll(async () => {
  await node?.stop();
  rmSync(certs, { recursive: true, force: true });
  cleanup?.();
});

const user = (url: string, name = 'scientist') =>
  url.replace('guest:guest', `${name}:${encodeURIComponent(PASSWORD)}`);

describe('security', () => {
  it('signed tasks run; unsigned ones, from a tasker without the key or published by hand, are refused', async () => {
    writeFileSync(join(dir, 'jobs.sh'), 'echo signed >> signed.txt\n');
    const env = { RABBITMQ_URL: node.url, WARREN_QUEUE: 'signed.tasks', WARREN_SIGNING_KEY: KEY };
    const guard = worker(['--name', 'guard'], { cwd: dir, env });
    expect(
      (await tasker(['run', 'jobs.sh', '--run-id', 'sig-1'], { cwd: dir, env })).exitCode,
    ).toBe(0);
    expect(readFileSync(join(dir, 'signed.txt'), 'utf8')).toBe('signed\n');

    // A tasker without the key: each task is refused, dead-lettered, and recorded `rejected`.
    writeFileSync(join(dir, 'forged.sh'), 'echo forged >> forged.txt\n');
    const forged = await tasker(['run', 'forged.sh', '--run-id', 'sig-2'], {
      cwd: dir,
      env: { ...env, WARREN_SIGNING_KEY: '' },
    });
    expect(forged.exitCode).toBe(1);
    expect(endsOf(ledgerOf(join(dir, '.warren'), 'sig-2'))[0]).toMatchObject({
      failure: 'rejected',
      final: true,
    });

    // A task published by hand with amqp-publish: valid JSON, right reply-to, no signature.
    const body = JSON.stringify({
      v: 1,
      run: 'sig-1',
      phase: 'x',
      task: '0123456789abcdef',
      attempt: 1,
      command: 'touch pwned',
      timeoutMs: 0,
    });
    await execa('amqp-publish', [
      '-u',
      node.url,
      '-r',
      'signed.tasks',
      '-C',
      'application/json',
      '-b',
      body,
      '-p',
    ]);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    guard.kill('SIGTERM');
    const log = logLines((await guard).stderr).map((line) => line.msg);
    expect(log.filter((msg) => /refused: it is not signed/.test(msg))).toHaveLength(2);
    expect(readdirSync(dir)).not.toContain('pwned');
    expect(readdirSync(dir)).not.toContain('forged.txt');
    count({ badInputs: 2, tasksRun: 1 });
  });

  it('a forged task dead-lettered into a signed run cannot fail the real one', async () => {
    writeFileSync(join(dir, 'slow.sh'), 'sleep 1.5; echo slow >> slow.txt\n');
    const env = { RABBITMQ_URL: node.url, WARREN_QUEUE: 'signed.tasks', WARREN_SIGNING_KEY: KEY };
    const guards = ['guard-a', 'guard-b'].map((name) =>
      worker(['--name', name], { cwd: dir, env }),
    );
    const run = tasker(['run', 'slow.sh', '--run-id', 'sig-3'], { cwd: dir, env });
    let start: { task: string; phase: string } | undefined;
    await waitFor(
      () => {
        const path = join(dir, '.warren/runs/sig-3/ledger.jsonl');
        start = (existsSync(path) ? ledgerOf(join(dir, '.warren'), 'sig-3') : []).find(
          (record) => record.type === 'start',
        ) as typeof start;
        return start !== undefined;
      },
      30_000,
      'the slow task to start',
    );
    // The same task, unsigned, with the run's header: the idle worker refuses it and the broker
    // dead-letters it into the run's results queue, where it must not count as `rejected`.
    const connection = await amqp.connect(node.url);
    const channel = await connection.createConfirmChannel();
    channel.sendToQueue(
      'signed.tasks',
      Buffer.from(
        JSON.stringify({
          v: 1,
          run: 'sig-3',
          phase: start?.phase,
          task: start?.task,
          attempt: 1,
          command: 'touch pwned',
          timeoutMs: 0,
        }),
      ),
      { type: 'warren.task', replyTo: 'warren.results.sig-3', headers: { 'warren-run': 'sig-3' } },
    );
    await channel.waitForConfirms();
    await connection.close();
    const result = await run;
    for (const guard of guards) guard.kill('SIGTERM');
    await Promise.all(guards);
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toMatch(/a dead-lettered task not from this tasker: it is not signed/);
    expect(endsOf(ledgerOf(join(dir, '.warren'), 'sig-3'))).toMatchObject([
      { state: 'succeeded', final: true },
    ]);
    expect(readFileSync(join(dir, 'slow.txt'), 'utf8')).toBe('slow\n');
    expect(readdirSync(dir)).not.toContain('pwned');
    count({ badInputs: 1, tasksRun: 1 });
  });

  it('connects over TLS with the CA file, and says clearly when the certificate is not trusted', async () => {
    writeFileSync(join(dir, 'tls.sh'), 'echo over tls >> tls.txt\n');
    const url = `amqps://guest:guest@localhost:${tlsPort}`;
    const env = {
      RABBITMQ_URL: url,
      WARREN_QUEUE: 'tls.tasks',
      WARREN_CA_FILE: join(certs, 'ca.pem'),
    };
    const secure = worker(['--name', 'tls'], { cwd: dir, env });
    const result = await tasker(['run', 'tls.sh', '--run-id', 'tls-1'], { cwd: dir, env });
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain(`RabbitMQ at localhost:${tlsPort}`);
    expect(readFileSync(join(dir, 'tls.txt'), 'utf8')).toBe('over tls\n');
    secure.kill('SIGTERM');
    await secure;
    const untrusted = await tasker(['run', 'tls.sh'], {
      cwd: dir,
      env: { RABBITMQ_URL: url, WARREN_CONNECT_TIMEOUT: '2s' },
    });
    expect(untrusted.exitCode).toBe(3);
    expect(untrusted.stderr).toMatch(
      /^tasker: TLS handshake with the broker at localhost:\d+ failed: .*(self.signed|certificate).* \(check --ca-file \/ WARREN_CA_FILE\)$/,
    );
    count({ badInputs: 1, tasksRun: 1 });
  });

  it('refuses a vhost without permissions with one line and exit 3', async () => {
    const result = await worker([], {
      cwd: dir,
      env: { RABBITMQ_URL: `${user(node.url)}/locked`, WARREN_LOG_LEVEL: 'silent' },
    });
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toMatch(
      /^worker: the broker at 127\.0\.0\.1:\d+ refused vhost `locked` to user `scientist` \(no such vhost, or no permissions on it\)$/,
    );
    count({ badInputs: 1 });
  });

  it('never shows a password in a log line, an error message, the ledger or a task log', async () => {
    writeFileSync(
      join(dir, 'secret.sh'),
      'echo "$RABBITMQ_URL $RABBITMQ_PASS $WARREN_SIGNING_KEY" >> seen.txt\nfalse\n',
    );
    const env = {
      RABBITMQ_URL: user(node.url),
      WARREN_QUEUE: 'secret.tasks',
      WARREN_SIGNING_KEY: KEY,
      WARREN_LOG_LEVEL: 'debug',
    };
    const quiet = worker(['--name', 'quiet'], { cwd: dir, env });
    const outputs: string[] = [];
    const result = await tasker(['run', 'secret.sh', '--run-id', 'secret-1', '--retries', '0'], {
      cwd: dir,
      env,
    });
    outputs.push(result.stdout, result.stderr);
    quiet.kill('SIGTERM');
    const stopped = await quiet;
    outputs.push(stopped.stdout, stopped.stderr);
    // Failing connections, with the password in the URL.
    for (const url of [user(node.url).replace(/:\d+$/, ':1'), `${user(node.url)}/locked`]) {
      const failed = await tasker(['run', 'secret.sh'], {
        cwd: dir,
        env: { RABBITMQ_URL: url, WARREN_CONNECT_TIMEOUT: '1s' },
      });
      outputs.push(failed.stdout, failed.stderr);
    }
    // Tasks do not see Warren's own secrets either.
    expect(readFileSync(join(dir, 'seen.txt'), 'utf8').trim()).toBe('');
    const files: string[] = [];
    const walk = (path: string) => {
      if (statSync(path).isDirectory())
        for (const name of readdirSync(path)) walk(join(path, name));
      else files.push(readFileSync(path, 'utf8'));
    };
    walk(join(dir, '.warren'));
    for (const text of [...outputs, ...files]) {
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(encodeURIComponent(PASSWORD));
      expect(text).not.toContain(KEY);
    }
    await waitFor(() => processesIn(dir).length === 0, 10_000, 'no process left');
    count({ badInputs: 2, tasksRun: 2 });
  });

  it('runs with the least permissions docs/security.md gives, and a worker cannot write to the task queue', async () => {
    writeFileSync(join(dir, 'least.sh'), 'echo least >> least.txt\n');
    const minimal = worker(['--name', 'least'], {
      cwd: dir,
      env: { RABBITMQ_URL: user(node.url, 'worker-u') },
    });
    const result = await tasker(['run', 'least.sh', '--run-id', 'least-1'], {
      cwd: dir,
      env: { RABBITMQ_URL: user(node.url, 'tasker-u') },
    });
    expect(result.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'least.txt'), 'utf8')).toBe('least\n');
    minimal.kill('SIGTERM');
    expect((await minimal).exitCode).toBe(0);
    // The worker's user may not publish tasks: the broker closes its channel.
    const connection = await amqp.connect(user(node.url, 'worker-u'));
    const channel = await connection.createConfirmChannel();
    const refusal = new Promise<string>((resolve) => {
      channel.on('error', (error: Error) => resolve(error.message));
      setTimeout(() => resolve('no refusal within 5 s'), 5000);
    });
    channel.sendToQueue('warren.tasks', Buffer.from('{"v":1}'), {}, () => {});
    // RabbitMQ 4.x says "write access"; 3.10 says "access".
    expect(await refusal).toMatch(
      /ACCESS_REFUSED - (write )?access to exchange 'amq.default' in vhost '\/' refused for user 'worker-u'/,
    );
    await connection.close().catch(() => {});
  });
});
