// Pushes that pub/sub lost while an api replica's subscriber was away: Redis restarts (losing its
// data), an outcome is decided meanwhile, and it is published before this replica's subscriber is
// back (it reaches the restarted Redis through a gate the test holds shut). Pub/sub keeps nothing
// for a subscriber that is away, so the tenant socket, open throughout, gets the event only because
// the replica re-delivers it from PostgreSQL once its subscriber returns. Order status, pushed by
// the kitchen's consumer, is read back from the outbox the same way.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Redis } from 'ioredis';
import { orderStatusSource } from '../services/api/kitchen/status-catch-up.js';
import { COMMANDS } from '../services/domains/smart-home/command-store.js';
import type { PartnerSimulator } from '../services/simulators/smart-home/partner.js';
import { waitFor } from './support/context.js';
import { startOwnRedis, type OwnServer } from './support/own-servers.js';
import {
  call,
  connectedTenant,
  openCommand,
  openSocket,
  replyAsPartner,
  startStack,
  type Stack,
  type TenantSocket,
} from './support/smart-home.js';
import { startTcpGate, type TcpGate } from './support/tcp-gate.js';

/** Long enough for a Redis restart between an open and its reply on a loaded machine. */
const TTL_MS = 15_000;

let redis: OwnServer;
let gate: TcpGate;
let stack: Stack;
let partner: PartnerSimulator;

beforeAll(async () => {
  redis = await startOwnRedis();
  const { hostname, port } = new URL(redis.url);
  gate = await startTcpGate({ host: hostname, port: Number(port) });
  stack = await startStack('pushrec', {
    env: { REDIS_URL: redis.url, SMART_HOME_COMMAND_TTL_MS: String(TTL_MS) },
    partner: { delayMs: 10 },
    apiSubscriberUrl: `redis://${gate.address}`,
  });
  partner = stack.partner as PartnerSimulator;
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await gate?.close();
  await redis?.stop();
});

/** How many connections are subscribed to the tenant's event channel on the (restarted) Redis. */
async function subscribers(tenant: string): Promise<number> {
  const probe = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  try {
    const [, n] = (await probe.pubsub(
      'NUMSUB',
      `${stack.ctx.keyPrefix}tenant-events:${tenant}`,
    )) as [string, number];
    return Number(n);
  } finally {
    probe.disconnect();
  }
}

/** Redis restarted empty, with the api's subscriber kept away from it (its way there shut). */
async function restartRedisWithoutTheSubscriber(): Promise<void> {
  gate.shut();
  await redis.stop();
}

const isResult = (id: string) => (e: Record<string, unknown>) =>
  e.type === 'command.result' && e.commandId === id;

describe('a tenant socket open across a Redis restart', () => {
  test("a command result published while the api replica's subscriber was away reaches the socket, from PostgreSQL, once the subscriber is back", async () => {
    const { tenant, token } = await connectedTenant(stack);
    const socket: TenantSocket = await openSocket(stack.api.url, token);
    partner.behaviour.silent = true;
    try {
      const open = await openCommand(stack, token);
      await restartRedisWithoutTheSubscriber();
      // Decided in PostgreSQL while Redis is down: the push fails and stays due.
      await replyAsPartner(stack, open.command, 'success');
      await waitFor(
        async () =>
          (await stack.ctx.db(COMMANDS).where({ command_id: open.id }).first())?.status ===
          'opened',
        20_000,
        'opened in PostgreSQL',
      );
      await redis.start();
      // The sweep pushes it again once Redis answers, to nobody: the subscriber is still away.
      await waitFor(
        async () =>
          (await stack.ctx.db(COMMANDS).where({ command_id: open.id }).first())?.push_due_at ===
          null,
        30_000,
        'the result pushed again',
      );
      expect(await subscribers(tenant)).toBe(0);
      expect(socket.events.filter(isResult(open.id))).toEqual([]);

      gate.open();
      const result = await socket.next(
        isResult(open.id),
        20_000,
        'the result re-delivered once the subscriber is back',
      );
      expect(result).toMatchObject({
        type: 'command.result',
        commandId: open.id,
        service: 'intercom',
        status: 'opened',
      });
      expect(await subscribers(tenant)).toBe(1);
    } finally {
      partner.behaviour.silent = false;
      gate.open();
      await redis.start();
      await socket.close();
    }
  }, 120_000);

  test('a subscription change decided while Redis was down reaches the socket, from PostgreSQL, once the subscriber is back', async () => {
    const { tenant, token } = await connectedTenant(stack);
    const socket = await openSocket(stack.api.url, token);
    try {
      await restartRedisWithoutTheSubscriber();
      const res = await call(
        stack.api.url,
        'POST',
        '/v1/smart-home/subscriptions/intercom/disconnect',
        token,
      );
      expect(res.status).toBe(202);
      await waitFor(
        async () =>
          (await call(stack.api.url, 'GET', '/v1/smart-home/subscriptions', token)).body
            .subscriptions[0]?.state === 'disconnected',
        20_000,
        'disconnected',
      );
      await redis.start();
      expect(socket.events.filter((e) => e.type === 'subscription.changed')).toEqual([]);

      gate.open();
      const changed = await socket.next(
        (e) =>
          e.type === 'subscription.changed' &&
          (e.subscription as { state?: string }).state === 'disconnected',
        20_000,
        'the change re-delivered once the subscriber is back',
      );
      expect(changed).toMatchObject({
        subscription: {
          service: 'intercom',
          state: 'disconnected',
          lastRequest: { kind: 'disconnect', state: 'complete' },
        },
      });
      expect(await subscribers(tenant)).toBe(1);
    } finally {
      gate.open();
      await redis.start();
      await socket.close();
    }
  }, 120_000);
});

describe('order status re-delivered from the outbox', () => {
  test('the latest published event of each order of the tenants asked, from the window only, as the tenant event the consumer pushes', async () => {
    const db = stack.ctx.db;
    const [tenant, other] = [`kt-${randomUUID().slice(0, 8)}`, `kt-${randomUUID().slice(0, 8)}`];
    const [cooked, paid, old, unsent, others] = [
      randomUUID(),
      randomUUID(),
      randomUUID(),
      randomUUID(),
      randomUUID(),
    ];
    const row = (
      order: string,
      tenantId: string,
      version: number,
      state: string,
      agoS: number | null,
      productionStatus: string | null = null,
    ) => ({
      event_id: randomUUID(),
      order_id: order,
      tenant_id: tenantId,
      state,
      version,
      production_status: productionStatus,
      status: agoS === null ? 0 : 2,
      finished_at: agoS === null ? null : db.raw(`now() - make_interval(secs => ?)`, [agoS]),
    });
    const rows = [
      row(cooked, tenant, 1, 'paid', 4),
      row(cooked, tenant, 2, 'in_production', 3, 'cooking'),
      row(paid, tenant, 1, 'paid', 2),
      row(old, tenant, 1, 'paid', 7_200),
      row(unsent, tenant, 1, 'paid', null),
      row(others, other, 1, 'paid', 1),
    ];
    await db('kitchen_outbox').insert(rows);
    const source = orderStatusSource(db);

    const got = await source.recent([tenant], 60_000, 100);
    expect(got.map((e) => [e.tenantId, e.event.orderId, e.event.version])).toEqual([
      [tenant, cooked, 2],
      [tenant, paid, 1],
    ]);
    expect(got[0]?.event).toEqual({
      type: 'order.status',
      at: expect.any(String),
      eventId: rows[1]?.event_id,
      orderId: cooked,
      state: 'in_production',
      version: 2,
      productionStatus: 'cooking',
    });
    // Over the limit, the events published last are kept.
    expect((await source.recent([tenant, other], 60_000, 2)).map((e) => e.event.orderId)).toEqual([
      paid,
      others,
    ]);
  });
});
