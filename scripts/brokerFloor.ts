/**
 * The floor of the broker path, for `npm run bench`: the message flow Warren keeps for safety
 * (quorum queues, persistent messages, publisher confirms, a task acknowledged only after its
 * result is confirmed) written with bare amqplib and nothing else: no ledger, no log files, no
 * validation, no markers. What this costs on a machine is what no implementation of that flow
 * in Node can beat there; Warren's figure is read next to it.
 *
 *   node brokerFloor.js worker <url> <queue> <prefetch>
 *   node brokerFloor.js tasker <url> <queue> <jobs file>
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import amqp, { type ConsumeMessage } from 'amqplib';
import split2 from 'split2';

const [role, url = '', queue = '', arg = ''] = process.argv.slice(2);

/** Consumes tasks one at a time: each runs in a long-lived /bin/sh, as Warren's slots do. */
async function worker(prefetch: number): Promise<void> {
  const connection = await amqp.connect(url);
  const channel = await connection.createConfirmChannel();
  await channel.prefetch(prefetch);
  const shell = spawn('/bin/sh', ['-s'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const backlog: ConsumeMessage[] = [];
  let current: ConsumeMessage | undefined;
  const next = () => {
    if (current || backlog.length === 0) return;
    current = backlog.shift() as ConsumeMessage;
    const { command } = JSON.parse(current.content.toString()) as { command: string };
    shell.stdin.write(`( ${command} ) </dev/null >/dev/null 2>&1; echo $?\n`);
  };
  shell.stdout.pipe(split2()).on('data', (status: string) => {
    const message = current as ConsumeMessage;
    current = undefined;
    const { task } = JSON.parse(message.content.toString()) as { task: number };
    channel.publish(
      '',
      String(message.properties.replyTo),
      Buffer.from(JSON.stringify({ task, status: Number(status) })),
      { persistent: true },
      (error) => {
        if (!error) channel.ack(message);
      },
    );
    next();
  });
  await channel.consume(queue, (message) => {
    if (!message) return;
    backlog.push(message);
    next();
  });
  process.on('SIGTERM', () => {
    shell.stdin.end();
    void connection.close().finally(() => process.exit(0));
  });
}

/** Publishes every line as a task (confirmed, pipelined) and waits for every result. */
async function tasker(jobs: string): Promise<void> {
  const commands = readFileSync(jobs, 'utf8').split('\n').filter(Boolean);
  const connection = await amqp.connect(url);
  const channel = await connection.createConfirmChannel();
  const results = `${queue}.results.${process.pid}`;
  await channel.assertQueue(results, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await channel.prefetch(1000);
  let left = commands.length;
  const done = new Promise<void>((resolve) => {
    void channel.consume(results, (message) => {
      if (!message) return;
      channel.ack(message);
      if (--left === 0) resolve();
    });
  });
  for (const [task, command] of commands.entries()) {
    const body = Buffer.from(JSON.stringify({ task, command }));
    if (!channel.publish('', queue, body, { persistent: true, replyTo: results }))
      await new Promise((resolve) => channel.once('drain', resolve));
  }
  await channel.waitForConfirms();
  await done;
  await channel.deleteQueue(results);
  await connection.close();
}

if (role === 'worker') await worker(Number(arg) || 1);
else if (role === 'tasker') await tasker(arg);
else {
  console.error(
    'usage: brokerFloor.js worker <url> <queue> <prefetch> | tasker <url> <queue> <jobs>',
  );
  process.exit(2);
}
