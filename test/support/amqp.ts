// Per-test RabbitMQ isolation: each test file gets its own vhost on the local broker (created and
// deleted with rabbitmqctl), so exchanges, queues and messages of runs never meet.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AMQP_URL, uniqueName } from './context.js';
import { track } from './leaks.js';

const run = promisify(execFile);

export interface TestVhost {
  vhost: string;
  /** AMQP_URL pointing at the vhost. */
  url: string;
  close(): Promise<void>;
}

export async function createVhost(label: string): Promise<TestVhost> {
  const vhost = uniqueName(`t_${label}`);
  await run('rabbitmqctl', ['add_vhost', vhost]);
  const user = new URL(AMQP_URL).username || 'guest';
  await run('rabbitmqctl', ['set_permissions', '-p', vhost, user, '.*', '.*', '.*']);
  const url = new URL(AMQP_URL);
  url.pathname = `/${encodeURIComponent(vhost)}`;
  const untrack = track(`rabbitmq vhost ${vhost}`);
  return {
    vhost,
    url: url.toString(),
    async close() {
      await run('rabbitmqctl', ['delete_vhost', vhost]);
      untrack();
    },
  };
}

/** Messages ready in `queue` now. */
export async function queueDepth(url: string, queue: string): Promise<number> {
  const { connectAmqp } = await import('../../services/core/amqp.js');
  const { pino } = await import('pino');
  const conn = connectAmqp(url, pino({ level: 'silent' }), { name: 'test inspector' });
  const ch = conn.createChannel({});
  try {
    await ch.waitForConnect();
    return (await ch.checkQueue(queue)).messageCount;
  } finally {
    await ch.close();
    await conn.close();
  }
}
