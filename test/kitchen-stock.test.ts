// Stock is held from payment to production on the real servers: two orders that each fit the
// stock but not together cannot both be paid; a declined payment gives its stock back; a produced
// order consumes what it held.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { DECLINED_CARD } from '../services/simulators/payment-gateway/server.js';
import { waitFor } from './support/context.js';
import {
  seedMenuAndStock,
  stockApplied,
  startKitchenStack,
  type KitchenStack,
} from './support/kitchen.js';

let s: KitchenStack;

beforeAll(async () => {
  s = await startKitchenStack('kstock');
  await s.startKitchen();
  // 500 g of beet: one order of two borscht and a salad (300.5 g) fits, two do not.
  await seedMenuAndStock(s, { beet: 500, beef: 5_000, walnut: 1_000 });
  await stockApplied(s);
});
afterAll(async () => {
  await s?.close();
});

const items = [
  { dishId: 'borscht', quantity: 2 },
  { dishId: 'salad', quantity: 1 },
];
const stockOf = async (ingredient: string) =>
  (await s.call('GET', '/v1/kitchen/stock', { apiKey: s.operatorKey })).body.stock.find(
    (x: { ingredient: string }) => x.ingredient === ingredient,
  );
const state = async (id: string) =>
  (await s.ctx.db('kitchen_orders').where({ id }).first())?.state as string;

test('two orders that fit the stock only one at a time: one payment is accepted, the other is refused before any charge', async () => {
  const token = await s.idp.token('tenant-stock');
  const a = await s.call('POST', '/v1/kitchen/orders', { token, body: { items } });
  const b = await s.call('POST', '/v1/kitchen/orders', { token, body: { items } });
  expect([a.status, b.status]).toEqual([201, 201]);
  const ids = [a.body.order.orderId as string, b.body.order.orderId as string];
  const paid = await Promise.all(
    ids.map((id) =>
      s.call('POST', `/v1/kitchen/orders/${id}/payment`, {
        token,
        body: { cardToken: s.gateway.tokenize('4111111111111111') },
      }),
    ),
  );
  expect(paid.map((p) => p.status).sort()).toEqual([202, 409]);
  const refused = paid.find((p) => p.status === 409);
  expect(refused?.body.error.code).toBe('ingredients_unavailable');
  const winner = ids[paid.findIndex((p) => p.status === 202)] as string;
  const loser = ids[paid.findIndex((p) => p.status === 409)] as string;
  expect(await state(loser)).toBe('awaiting_payment');
  expect(s.gateway.charges.filter((c) => c.orderId === loser)).toHaveLength(0);

  await waitFor(
    async () => (await state(winner)) === 'produced',
    15_000,
    'the paid order produced',
  );
  expect(await stockOf('beet')).toMatchObject({
    quantity: 500 - 300.5,
    reserved: 0,
    available: 500 - 300.5,
  });
});

test('a declined payment gives the stock it held back', async () => {
  const token = await s.idp.token('tenant-declined');
  const placed = await s.call('POST', '/v1/kitchen/orders', {
    token,
    body: { items: [{ dishId: 'salad', quantity: 1 }] },
  });
  const id = placed.body.order.orderId as string;
  const before = await stockOf('beet');
  const pay = await s.call('POST', `/v1/kitchen/orders/${id}/payment`, {
    token,
    body: { cardToken: s.gateway.tokenize(DECLINED_CARD) },
  });
  expect(pay.status).toBe(202);
  await waitFor(async () => (await state(id)) === 'payment_declined', 15_000, 'declined');
  expect(await stockOf('beet')).toMatchObject({ quantity: before.quantity, reserved: 0 });
  expect(await s.ctx.db('kitchen_stock_reservations').where({ order_id: id })).toEqual([]);
});
