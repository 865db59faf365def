// Kitchen order status reaches the tenant's real WebSocket (`/v1/events`) on the api: kitchen →
// Protobuf event on RabbitMQ → the api's status consumer → Redis tenant channel → the socket.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { Redis } from 'ioredis';
import { EventSockets } from '../services/api/events-ws.js';
import { smartHomeMetrics } from '../services/mq-bridge/metrics.js';
import { REDIS_URL, waitFor } from './support/context.js';
import { seedMenuAndStock, startKitchenStack, type KitchenStack } from './support/kitchen.js';
import { openSocket } from './support/smart-home.js';

let s: KitchenStack;
let sockets: EventSockets;
let subscriber: Redis;

beforeAll(async () => {
  s = await startKitchenStack('kws');
  subscriber = new Redis(REDIS_URL);
  sockets = new EventSockets({
    authenticator: s.idp.authenticator, subscriber, keyPrefix: s.ctx.keyPrefix, logger: s.ctx.logger,
    metrics: smartHomeMetrics(s.ctx.metrics.registry), heartbeatMs: 30_000, maxSocketsPerTenant: 5,
  });
  sockets.attach(s.api.server);
  await s.startKitchen();
  await seedMenuAndStock(s);
  await waitFor(async () => (await s.ctx.db('kitchen_stock').count<{ c: string }[]>('* as c'))[0]?.c === '3', 10_000, 'stock applied');
});
afterAll(async () => {
  await sockets?.close();
  subscriber?.disconnect();
  await s?.close();
});

test('a tenant watching its WebSocket sees its order go from payment to produced', async () => {
  const token = await s.idp.token('tenant-ws');
  const socket = await openSocket(s.apiUrl, token);
  try {
    const placed = await s.call('POST', '/v1/kitchen/orders', { token, body: { items: [{ dishId: 'salad', quantity: 1 }] } });
    expect(placed.status).toBe(201);
    const orderId = placed.body.order.orderId as string;
    const pay = await s.call('POST', `/v1/kitchen/orders/${orderId}/payment`, { token, body: { cardToken: s.gateway.tokenize('4111111111111111') } });
    expect(pay.status).toBe(202);
    await socket.next((e) => e.type === 'order.status' && e.orderId === orderId && e.state === 'produced', 20_000, 'produced on the socket');
    const states = socket.events.filter((e) => e.type === 'order.status' && e.orderId === orderId).map((e) => e.state);
    expect(states).toEqual(['payment_pending', 'paid', 'in_production', 'produced']);
  } finally {
    await socket.close();
  }
});
