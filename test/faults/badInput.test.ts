import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import amqp from 'amqplib';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../shared/protocol.js';
import { taskId } from '../../shared/taskId.js';
import { logLines, tasker, waitFor, worker } from '../helpers/cli.js';
import { brokerUrl, eachFleet, queueDepth, withChannel } from '../helpers/fleet.js';
import { count } from './figures.js';

let dir: string;
let queue: string;
let running: ReturnType<typeof worker> | undefined;
eachFleet((fleet) => ({ dir, queue } = fleet), {
  queues: ['warren.results.bad-run'],
  leftovers: 'wait',
  stop: async () => {
    running?.kill('SIGTERM');
    await running;
    running = undefined;
  },
});

describe('bad input: one clear line, a distinct exit code, nothing lost or half-written', () => {
  it('on the command line', async () => {
    writeFileSync(join(dir, 'ok.sh'), 'true\n');
    writeFileSync(join(dir, 'empty.sh'), '');
    writeFileSync(join(dir, 'comments.sh'), '# only\n\n# comments\n');
    writeFileSync(
      join(dir, 'binary.sh'),
      Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x00, 0x00, 0x0a]),
    );
    writeFileSync(join(dir, 'nosim.sh'), 'mkdir out\npython -m asreview metrics a -o b\n');
    writeFileSync(join(dir, 'long.sh'), `echo ${'x'.repeat(1024 * 1024 + 10)}\n`);
    mkdirSync(join(dir, 'folder.sh'));
    const unreachable = {
      RABBITMQ_URL: 'amqp://guest:guest@127.0.0.1:1',
      WARREN_CONNECT_TIMEOUT: '1s',
    };
    const cases: [string[], Record<string, string>, number, RegExp][] = [
      [['run', 'missing.sh'], {}, 2, /cannot read jobs file `missing\.sh`: no such file/],
      [['run', 'empty.sh'], {}, 2, /jobs file `empty\.sh` has no commands/],
      [['run', 'comments.sh'], {}, 2, /jobs file `comments\.sh` has no commands/],
      [['run', '/proc/1/mem'], {}, 2, /cannot read jobs file `\/proc\/1\/mem`: permission denied/],
      [['run', 'folder.sh'], {}, 2, /cannot read jobs file `folder\.sh`: is a directory/],
      [['run', 'binary.sh'], {}, 2, /`binary\.sh` is not a text file: NUL byte on line 1/],
      [['run', 'long.sh'], {}, 2, /line 1 of `long\.sh` is longer than 1 MiB/],
      [['run', 'ok.sh', '--rules', 'nonsense'], {}, 2, /unknown rules `nonsense`/],
      [
        ['run', 'nosim.sh', '--rules', 'asreview-cloud'],
        unreachable,
        2,
        /`nosim\.sh` has no line containing `simulate`: asreview-cloud's split needs one/,
      ],
      [['run', 'ok.sh', '--phase', 'a=[z-a]'], {}, 2, /invalid pattern for phase `a`/],
      [
        ['run', 'ok.sh', '--phase', 'no-equals-sign'],
        {},
        2,
        /invalid --phase `no-equals-sign`: expected NAME=REGEX/,
      ],
      [['run', 'ok.sh', '--frobnicate'], {}, 2, /unknown option '--frobnicate'/],
      [['run', 'ok.sh', '--rules', 'makita', '--phase', 'a=b'], {}, 2, /cannot be used with/],
      [['run', 'ok.sh', '-j', 'lots'], {}, 2, /invalid number of slots `lots`/],
      [['run', 'ok.sh', '--timeout', 'whenever'], {}, 2, /invalid timeout `whenever`/],
      [['run', 'ok.sh'], { RABBITMQ_URL: 'http://example.org' }, 2, /invalid RABBITMQ_URL/],
      [
        ['run', 'ok.sh'],
        unreachable,
        3,
        /cannot reach the broker at 127\.0\.0\.1:1: connection refused/,
      ],
      [
        ['run', 'ok.sh'],
        { RABBITMQ_URL: brokerUrl().replace('guest:guest', 'guest:nope') },
        3,
        /refused the credentials of user `guest`/,
      ],
      [['run', 'ok.sh'], { WARREN_SIGNING_KEY: 'short' }, 2, /WARREN_SIGNING_KEY is too short/],
    ];
    for (const [args, env, code, message] of cases) {
      const result = await tasker(args, { cwd: dir, env: { WARREN_LOG_LEVEL: 'silent', ...env } });
      const what = `${args.join(' ')} ${JSON.stringify(env)}`;
      expect(result.exitCode, what).toBe(code);
      expect(result.stderr, what).toMatch(message);
      expect(result.stderr.split('\n'), what).toHaveLength(1);
      expect(result.stderr, what).not.toMatch(/\n\s+at /);
    }
    // Nothing was started, so nothing was recorded.
    expect(
      existsSync(join(dir, '.warren', 'runs')) ? readdirSync(join(dir, '.warren', 'runs')) : [],
    ).toEqual([]);
    const workerUsage = await worker(['--concurrency', '0'], {
      cwd: dir,
      env: { RABBITMQ_URL: brokerUrl() },
    });
    expect(workerUsage.exitCode).toBe(2);
    expect(workerUsage.stderr).toBe(
      'worker: invalid concurrency `0`: expected a whole number from 1 to 1024',
    );
    count({ badInputs: cases.length + 1 });
  });

  it('on the task queue: no message crashes a worker, each is dead-lettered, and good work goes on', async () => {
    const env = { RABBITMQ_URL: brokerUrl(), WARREN_QUEUE: queue };
    // A tasker declares the queue; the worker takes its one task to show it is up.
    writeFileSync(join(dir, 'first.sh'), 'true\n');
    const sturdy = worker(['--name', 'sturdy'], { cwd: dir, env });
    running = sturdy;
    expect(
      (await tasker(['send', 'first.sh', '--run-id', 'bad-first'], { cwd: dir, env })).exitCode,
    ).toBe(0);
    const good = {
      v: PROTOCOL_VERSION,
      run: 'bad-run',
      phase: 'p',
      task: taskId('bad-run', 'p', 'echo good > good.txt'),
      attempt: 1,
      command: 'echo good > good.txt',
      timeoutMs: 0,
    };
    const reply = { replyTo: 'warren.results.bad-run' };
    const messages: [string, Buffer, Record<string, unknown>][] = [
      ['not JSON', Buffer.from('rm -rf / # not json'), reply],
      ['JSON of the wrong shape', Buffer.from(JSON.stringify({ v: 1, command: 'echo hi' })), reply],
      ['an unknown protocol version', Buffer.from(JSON.stringify({ ...good, v: 7 })), reply],
      ['an empty body', Buffer.alloc(0), reply],
      // Past the worker's 2 MiB, within what every broker takes: RabbitMQ 4.x refuses a message
      // over 16 MiB itself (max_message_size; 3.10's is 128 MiB) and closes the channel.
      ['10 MB', Buffer.alloc(10 * 1024 * 1024, 0x61), reply],
      [
        'a reply-to somewhere else',
        Buffer.from(JSON.stringify(good)),
        { replyTo: 'somebody.elses.queue' },
      ],
    ];
    const connection = await amqp.connect(brokerUrl());
    try {
      const channel = await connection.createConfirmChannel();
      await channel.assertQueue('warren.results.bad-run', {
        durable: true,
        arguments: { 'x-queue-type': 'quorum' },
      });
      await channel.bindQueue('warren.results.bad-run', 'warren.results', 'warren.results.bad-run');
      for (const [, content, options] of messages) channel.sendToQueue(queue, content, options);
      // All of them on the broker before this connection closes (100 MB takes a moment).
      await channel.waitForConfirms();
    } finally {
      await connection.close();
    }
    // By hand, as people do: amqp-publish, no properties at all.
    await execa('amqp-publish', ['-u', brokerUrl(), '-r', queue, '-b', 'echo hello from a shell']);
    await withChannel(async (channel) => {
      channel.sendToQueue(queue, Buffer.from(JSON.stringify(good)), { ...reply, persistent: true });
      let result: false | { content: Buffer } = false;
      for (let i = 0; i < 200 && !result; i++) {
        result = await channel.get('warren.results.bad-run', { noAck: true });
        if (!result) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(result && JSON.parse(result.content.toString())).toMatchObject({
        task: good.task,
        state: 'succeeded',
      });
    });
    expect(readFileSync(join(dir, 'good.txt'), 'utf8')).toBe('good\n');
    expect(await queueDepth(queue)).toBe(0);
    // Other fault tests dead-letter messages of their own at the same time: count this test's,
    // by the queue their x-death names (read, then left in `warren.dead`).
    const dead = () =>
      withChannel(async (channel) => {
        let mine = 0;
        for (;;) {
          const message = await channel.get('warren.dead', { noAck: false });
          if (!message) break;
          const deaths = message.properties.headers?.['x-death'] as
            | { queue?: string }[]
            | undefined;
          if (deaths?.[0]?.queue === queue) mine++;
        }
        return mine;
      });
    await waitFor(
      async () => (await dead()) >= messages.length + 1,
      30_000,
      'every bad message dead-lettered',
    );
    expect(await dead()).toBe(messages.length + 1);
    sturdy.kill('SIGTERM');
    const stopped = await sturdy;
    expect(stopped.exitCode).toBe(0);
    const refused = logLines(stopped.stderr).filter((line) =>
      line.msg.startsWith('refused a message'),
    );
    expect(refused).toHaveLength(messages.length + 1);
    expect(refused.map((line) => line.msg).join('\n')).toMatch(
      /task body is 10485760 bytes \(limit 2097152\)/,
    );
    count({ badInputs: messages.length + 1, tasksRun: 2 });
  });
});
