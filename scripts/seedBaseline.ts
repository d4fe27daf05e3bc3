/**
 * The seed, for `npm run bench`: the design Warren replaces (asreview-cloud's pika tasker and
 * workers) written with bare amqplib, as a baseline. The tasker publishes every line of a jobs
 * file to a classic durable queue (persistent messages, no publisher confirms), then counts
 * replies on a classic durable reply queue of its own until it has one per line. Each worker
 * takes one task at a time (prefetch 1), runs it in a fresh `/bin/sh -c` (as Python's
 * `subprocess.run(shell=True)` does), publishes a reply to the task's `replyTo` and then acks.
 *
 * A run of it guarantees less than a Warren run: a classic queue lives on one node; with no
 * confirms, a task or reply the broker loses on the way is never known lost, and the tasker waits
 * for it forever; a task that kills its worker every time is redelivered forever (no delivery
 * limit, no dead letters); there is no ledger, no log, no retry, no phase, no lease. The task
 * queue is declared by whoever starts the workers (the bench), as a classic durable queue.
 * Connections are opened with TCP_NODELAY, as pika opens every connection: amqplib's default
 * (Nagle on) holds a reply behind the broker's delayed ACK, some 40 ms a task.
 *
 *   node seedBaseline.js worker <url> <queue>
 *   node seedBaseline.js tasker <url> <queue> <jobs file>
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import amqp from 'amqplib';

const [role, url = '', queue = '', jobs = ''] = process.argv.slice(2);
const connect = () => amqp.connect(url, { noDelay: true });

/** Runs one task at a time, each in a fresh shell; replies, then acks. */
async function worker(): Promise<void> {
  const connection = await connect();
  const channel = await connection.createChannel();
  await channel.prefetch(1);
  await channel.consume(queue, (message) => {
    if (!message) return;
    const { task, command } = JSON.parse(message.content.toString()) as {
      task: number;
      command: string;
    };
    const reply = (status: number) => {
      channel.sendToQueue(
        String(message.properties.replyTo),
        Buffer.from(JSON.stringify({ task, status })),
        { persistent: true },
      );
      channel.ack(message);
    };
    const shell = spawn('/bin/sh', ['-c', command], { stdio: 'ignore' });
    // `error` (the shell could not start) comes instead of `exit`, never with it.
    shell.once('error', () => reply(127));
    shell.once('exit', (code, signal) => reply(code ?? (signal ? 128 : 1)));
  });
  process.on('SIGTERM', () => {
    void connection.close().finally(() => process.exit(0));
  });
}

/** Publishes every line as a task, then counts one reply per task. */
async function tasker(): Promise<void> {
  const commands = readFileSync(jobs, 'utf8').split('\n').filter(Boolean);
  const connection = await connect();
  const channel = await connection.createChannel();
  const replies = `${queue}.replies.${process.pid}`;
  await channel.assertQueue(replies, { durable: true });
  for (const [task, command] of commands.entries()) {
    const body = Buffer.from(JSON.stringify({ task, command }));
    if (!channel.sendToQueue(queue, body, { persistent: true, replyTo: replies }))
      await new Promise((resolve) => channel.once('drain', resolve));
  }
  let left = commands.length;
  await new Promise<void>((resolve) => {
    if (left === 0) resolve();
    void channel.consume(replies, (message) => {
      if (!message) return;
      channel.ack(message);
      if (--left === 0) resolve();
    });
  });
  await channel.deleteQueue(replies);
  await connection.close();
}

if (role === 'worker') await worker();
else if (role === 'tasker') await tasker();
else {
  console.error('usage: seedBaseline.js worker <url> <queue> | tasker <url> <queue> <jobs>');
  process.exit(2);
}
