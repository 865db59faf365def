// Smart home across a RabbitMQ restart, on a broker of this file's own: under a steady stream of
// opens, the bridge and the partner simulator process (the partner example client) acknowledge each
// message on the channel it came from, so no channel is closed for an unknown delivery tag, round
// trips are back to their usual latency within seconds, and no abort listeners pile up.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { waitFor } from './support/context.js';
import { expectCleanExit, startServiceProcess, type ServiceProcess } from './support/process.js';
import { startRabbitNode, type RabbitNode } from './support/rabbitmq-node.js';
import {
  call,
  openSocket,
  PERSONAL,
  startStack,
  type Stack,
  type TenantSocket,
} from './support/smart-home.js';

let node: RabbitNode;
let stack: Stack;
let sim: ServiceProcess;

beforeAll(async () => {
  node = await startRabbitNode();
  stack = await startStack('shrestart', {
    amqpUrl: node.amqpUrl,
    partner: false,
    env: { SMART_HOME_COMMAND_TTL_MS: '15000' },
  });
  // A reply takes 150 ms: at 25 opens a second a few commands are always in flight.
  sim = startServiceProcess('services/simulators/smart-home/main.ts', {
    AMQP_URL: node.amqpUrl,
    SIM_PARTNER: stack.partnerInfo.name,
    SIM_DELAY_MS: '150',
    LOG_LEVEL: 'warn',
  });
  await waitFor(
    async () =>
      (await node.rabbitmqctl('list_consumers', '-q', 'queue_name')).includes(
        stack.partnerInfo.commandQueue,
      ),
    20_000,
    'the simulator to consume',
  );
}, 90_000);
afterAll(async () => {
  sim?.child.kill('SIGTERM');
  if (sim) await expectCleanExit(sim);
  await stack?.close();
  await node?.stop();
}, 60_000);

/** How RabbitMQ logs a channel it closed because of an ack with a delivery tag it does not know. */
const UNKNOWN_TAG = /precondition_failed: unknown delivery tag/gi;

/** Opens at a steady pace; each round trip is measured from the request to the socket's result. */
function openStream(token: string, socket: TenantSocket, everyMs: number) {
  const sent = new Map<string, number>();
  const trips: { sentAt: number; ms: number }[] = [];
  let stopped = false;
  const seen = new Set<string>();
  const collect = setInterval(() => {
    for (const e of socket.events) {
      const id = e.commandId as string | undefined;
      if (e.type !== 'command.result' || !id || seen.has(id)) continue;
      seen.add(id);
      const at = sent.get(id);
      if (at !== undefined) trips.push({ sentAt: at, ms: Date.now() - at });
    }
  }, 10);
  const loop = (async () => {
    while (!stopped) {
      const at = Date.now();
      void call(stack.api.url, 'POST', '/v1/smart-home/subscriptions/intercom/open', token).then(
        (r) => {
          if (r.status === 202) sent.set(r.body.commandId as string, at);
        },
        () => undefined,
      );
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    trips,
    async stop() {
      stopped = true;
      await loop;
      clearInterval(collect);
    },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

describe('a RabbitMQ restart under a stream of opens', () => {
  test('no channel is closed for an unknown delivery tag, round trips are back to normal within 5 s, and no abort listeners pile up', async () => {
    const token = await stack.idp.issue('tenant-restart');
    expect(
      (
        await call(stack.api.url, 'POST', '/v1/smart-home/subscriptions/intercom/connect', token, {
          personalData: PERSONAL,
        })
      ).status,
    ).toBe(202);
    await waitFor(
      async () =>
        (await call(stack.api.url, 'GET', '/v1/smart-home/subscriptions', token)).body
          .subscriptions[0]?.state === 'connected',
      10_000,
      'connected',
    );
    const socket = await openSocket(stack.api.url, token);
    const stream = openStream(token, socket, 40);
    try {
      await waitFor(() => stream.trips.length >= 50, 20_000, '50 round trips before the restart');
      const before = median(stream.trips.map((t) => t.ms));
      const logBefore = node.logs().length;
      await node.rabbitmqctl('stop_app');
      await node.rabbitmqctl('start_app');
      const restartedAt = Date.now();
      await waitFor(
        () => stream.trips.filter((t) => t.sentAt > restartedAt + 5_000).length >= 50,
        30_000,
        '50 round trips from 5 s after the restart',
      );
      const after = stream.trips.filter((t) => t.sentAt > restartedAt + 5_000).map((t) => t.ms);
      const closes = node.logs().slice(logBefore).match(UNKNOWN_TAG) ?? [];
      // Normal is ~150 ms (the partner's delay) plus the hops; a channel closing every 2 s made it seconds.
      const limit = Math.max(3 * before, before + 300);
      expect({
        closes,
        backToNormal:
          median(after) < limit || `median ${median(after)} ms after, ${before} ms before`,
        listenerWarning: /MaxListenersExceededWarning/.test(sim.output()),
      }).toEqual({ closes: [], backToNormal: true, listenerWarning: false });
    } finally {
      await stream.stop();
      await socket.close();
    }
  }, 120_000);
});
