// Two hubs on one RabbitMQ vhost (HUB_INSTALLATION): each installation's order status events reach
// its own api and tenants only. With one queue shared by both, each event went to one of the two
// apis at random, and the other's tenants never heard of it.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import amqplib from 'amqplib';
import { Redis } from 'ioredis';
import type { ChannelWrapper } from 'amqp-connection-manager';
import { startOrderStatusConsumer } from '../services/api/kitchen/status-consumer.js';
import { connectAmqp, type AmqpConnectionManager } from '../services/core/amqp.js';
import { TenantEventPublisher, TenantEventSubscriber } from '../services/core/tenant-events.js';
import {
  orderStatusEventSchema,
  type OrderStatusTenantEvent,
  type TenantEvent,
} from '../services/contracts/tenant-events.js';
import { createKitchenMetrics } from '../services/domains/kitchen/metrics.js';
import {
  encodeStatus,
  STATUS_EXCHANGE,
  statusRoute,
} from '../services/domains/kitchen/status-events.js';
import { createMetrics } from '../services/core/metrics.js';
import { REDIS_URL, waitFor } from './support/context.js';
import {
  placePaidOrder,
  seedMenuAndStock,
  stockApplied,
  startKitchenStack,
  type KitchenStack,
} from './support/kitchen.js';

/** The stack is installation "north"; "south" is a second hub's api on the same vhost. */
let s: KitchenStack;
let southAmqp: AmqpConnectionManager;
let southConsumer: ChannelWrapper;
let southRedis: Redis;
let southSubscriberRedis: Redis;
let southSubscriber: TenantEventSubscriber<OrderStatusTenantEvent>;
const southEvents: { tenantId: string; event: OrderStatusTenantEvent }[] = [];

beforeAll(async () => {
  s = await startKitchenStack('kinst', { installation: 'north' });
  const southPrefix = `${s.ctx.keyPrefix}south:`;
  southRedis = new Redis(REDIS_URL);
  southAmqp = connectAmqp(s.vhost.url, s.ctx.logger, { name: 'test-api-south' });
  southConsumer = startOrderStatusConsumer({
    route: statusRoute('south'),
    amqp: southAmqp,
    publisher: new TenantEventPublisher<TenantEvent>(southRedis, southPrefix),
    redis: southRedis,
    keyPrefix: southPrefix,
    logger: s.ctx.logger,
    metrics: createKitchenMetrics(createMetrics().registry),
  });
  await southConsumer.waitForConnect();
  southSubscriberRedis = new Redis(REDIS_URL);
  southSubscriber = new TenantEventSubscriber(
    southSubscriberRedis,
    southPrefix,
    s.ctx.logger,
    orderStatusEventSchema,
    (tenantId, event) => southEvents.push({ tenantId, event }),
  );
  await s.startKitchen();
  await seedMenuAndStock(s);
  await stockApplied(s);
});
afterAll(async () => {
  await southConsumer?.close();
  await southAmqp?.close();
  southRedis?.disconnect();
  southSubscriberRedis?.disconnect();
  await s?.close();
});

test("every status event of one installation's order reaches that installation's tenant, none the other installation's", async () => {
  const tenant = 'tenant-north';
  await s.watchTenant(tenant);
  await southSubscriber.add(tenant);
  const { orderId } = await placePaidOrder(s, tenant, [{ dishId: 'salad', quantity: 1 }]);
  const versions = await waitFor(
    () => {
      const seen = s.events
        .filter((e) => e.event.type === 'order.status' && e.event.orderId === orderId)
        .map((e) => (e.event.type === 'order.status' ? e.event.version : -1));
      return seen.includes(5) ? seen : undefined;
    },
    20_000,
    'the order produced, on the north tenant channel',
  );
  // Every version of the order, each once (the robots' cooking step may come between two polls).
  expect(versions.filter((v) => v !== 4)).toEqual([1, 2, 3, 5]);
  expect(southEvents).toEqual([]);
  const north = await s.ctx.db('kitchen_outbox').where({ order_id: orderId }).count('* as c');
  expect(Number(north[0]?.c)).toBe(versions.length);
});

test("a second installation's events reach its own tenants only, on its own routing key", async () => {
  const tenant = 'tenant-south';
  await s.watchTenant(tenant);
  await southSubscriber.add(tenant);
  const conn = await amqplib.connect(s.vhost.url);
  try {
    const ch = await conn.createConfirmChannel();
    const events = Array.from({ length: 6 }, (_, i) => ({
      eventId: randomUUID(),
      orderId: randomUUID(),
      tenantId: tenant,
      state: 'paid' as const,
      reason: '',
      occurredAtMs: Date.now(),
      version: i + 1,
      productionStatus: '',
    }));
    for (const e of events) {
      ch.publish(STATUS_EXCHANGE, statusRoute('south').routingKey, encodeStatus(e));
    }
    await ch.waitForConfirms();
    await waitFor(() => southEvents.length === events.length || undefined, 10_000, 'south events');
    expect(southEvents.map((e) => e.event.eventId)).toEqual(events.map((e) => e.eventId));
    expect(s.events.filter((e) => e.tenantId === tenant)).toEqual([]);
  } finally {
    await conn.close();
  }
});
