// Kitchen order status reaches the tenant's real WebSocket (`/v1/events`) on the api: kitchen →
// Protobuf event on RabbitMQ → the api's status consumer → Redis tenant channel → the socket, in
// the order's version order: an older or repeated event never reaches the socket.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import amqplib from 'amqplib';
import { Redis } from 'ioredis';
import { EventSockets } from '../services/api/events-ws.js';
import {
  DEAD_QUEUE,
  encodeStatus,
  STATUS_EXCHANGE,
  STATUS_ROUTING_KEY,
  type OrderStatusEvent,
} from '../services/domains/kitchen/status-events.js';
import { smartHomeMetrics } from '../services/domains/smart-home/metrics.js';
import { REDIS_URL, waitFor } from './support/context.js';
import {
  seedMenuAndStock,
  stockApplied,
  startKitchenStack,
  type KitchenStack,
} from './support/kitchen.js';
import { openSocket } from './support/smart-home.js';

let s: KitchenStack;
let sockets: EventSockets;
let subscriber: Redis;

beforeAll(async () => {
  s = await startKitchenStack('kws');
  subscriber = new Redis(REDIS_URL);
  sockets = new EventSockets({
    authenticator: s.idp.authenticator,
    subscriber,
    keyPrefix: s.ctx.keyPrefix,
    logger: s.ctx.logger,
    metrics: smartHomeMetrics(s.ctx.metrics.registry),
    heartbeatMs: 30_000,
    maxSocketsPerTenant: 5,
    maxBufferedBytes: 1024 * 1024,
  });
  sockets.attach(s.api.server);
  await s.startKitchen();
  await seedMenuAndStock(s);
  await stockApplied(s);
});
afterAll(async () => {
  await sockets?.close();
  subscriber?.disconnect();
  await s?.close();
});

test("a tenant watching its WebSocket sees its order go from payment through the robots' queue and cooking to produced", async () => {
  const token = await s.idp.token('tenant-ws');
  const socket = await openSocket(s.apiUrl, token);
  try {
    const placed = await s.call('POST', '/v1/kitchen/orders', {
      token,
      body: { items: [{ dishId: 'salad', quantity: 1 }] },
    });
    expect(placed.status).toBe(201);
    const orderId = placed.body.order.orderId as string;
    s.robots.holdCooking.add(orderId);
    const pay = await s.call('POST', `/v1/kitchen/orders/${orderId}/payment`, {
      token,
      body: { cardToken: s.gateway.tokenize('4111111111111111') },
    });
    expect(pay.status).toBe(202);
    await socket.next(
      (e) => e.type === 'order.status' && e.orderId === orderId && e.productionStatus === 'cooking',
      20_000,
      'cooking on the socket',
    );
    const cooking = await s.call('GET', `/v1/kitchen/orders/${orderId}`, { token });
    expect(cooking.body.order).toMatchObject({
      state: 'in_production',
      productionStatus: 'cooking',
      version: 4,
    });
    s.robots.holdCooking.delete(orderId);
    await socket.next(
      (e) => e.type === 'order.status' && e.orderId === orderId && e.state === 'produced',
      20_000,
      'produced on the socket',
    );
    const seen = socket.events.filter((e) => e.type === 'order.status' && e.orderId === orderId);
    expect(seen.map((e) => [e.state, e.productionStatus ?? null, e.version])).toEqual([
      ['payment_pending', null, 1],
      ['paid', null, 2],
      ['in_production', 'queued', 3],
      ['in_production', 'cooking', 4],
      ['produced', 'done', 5],
    ]);
  } finally {
    await socket.close();
  }
});

test('a tenant whose paid order fails sees it failed, then refunded with the same reason', async () => {
  const token = await s.idp.token('tenant-ws-refund');
  const socket = await openSocket(s.apiUrl, token);
  try {
    const placed = await s.call('POST', '/v1/kitchen/orders', {
      token,
      body: { items: [{ dishId: 'salad', quantity: 1 }] },
    });
    const orderId = placed.body.order.orderId as string;
    await s.call('POST', `/v1/kitchen/orders/${orderId}/payment`, {
      token,
      body: { cardToken: s.gateway.tokenize('4111111111111111') },
    });
    s.robots.failCooking.add(orderId);
    await socket.next(
      (e) => e.type === 'order.status' && e.orderId === orderId && e.state === 'refunded',
      20_000,
      'refunded on the socket',
    );
    const seen = socket.events.filter((e) => e.type === 'order.status' && e.orderId === orderId);
    expect(seen.map((e) => [e.state, e.version])).toEqual([
      ['payment_pending', 1],
      ['paid', 2],
      ['in_production', 3],
      ['failed', 4],
      ['refunded', 5],
    ]);
    expect(seen.at(-1)).toMatchObject({ reason: seen.at(-2)?.reason });
    // The robots' own words stay with operators; the tenant reads the hub's sentence.
    expect(seen.at(-1)?.reason).toBe('the robots could not cook it');
  } finally {
    await socket.close();
  }
});

test('an event older than one already pushed, or a repeat, never reaches the socket; a malformed one is dead-lettered', async () => {
  const tenantId = 'tenant-ws-order';
  const socket = await openSocket(s.apiUrl, await s.idp.token(tenantId));
  const conn = await amqplib.connect(s.vhost.url);
  try {
    const ch = await conn.createConfirmChannel();
    const orderId = randomUUID();
    const event = (version: number, state: OrderStatusEvent['state']): OrderStatusEvent => ({
      eventId: randomUUID(),
      orderId,
      tenantId,
      state,
      reason: '',
      occurredAtMs: Date.now(),
      version,
      productionStatus: '',
    });
    const v3 = event(3, 'produced');
    // As after a retried publish: version 3 is out before version 2, then the broker repeats version 3.
    for (const bytes of [
      encodeStatus(v3),
      encodeStatus(event(2, 'in_production')),
      encodeStatus(v3),
      Buffer.from('\u00ff not protobuf'),
    ]) {
      ch.publish(STATUS_EXCHANGE, STATUS_ROUTING_KEY, bytes);
    }
    // Handled after the others, so once it is on the socket they have all been decided.
    const sentinel = { ...event(1, 'payment_pending'), orderId: randomUUID() };
    ch.publish(STATUS_EXCHANGE, STATUS_ROUTING_KEY, encodeStatus(sentinel));
    await ch.waitForConfirms();
    await socket.next((e) => e.eventId === sentinel.eventId, 10_000, 'sentinel on the socket');
    const mine = socket.events.filter((e) => e.type === 'order.status' && e.orderId === orderId);
    expect(mine).toEqual([
      expect.objectContaining({ eventId: v3.eventId, state: 'produced', version: 3 }),
    ]);
    await waitFor(
      async () => (await ch.checkQueue(DEAD_QUEUE)).messageCount === 1,
      10_000,
      'malformed message dead-lettered',
    );
    await ch.close();
  } finally {
    await conn.close();
    await socket.close();
  }
});
