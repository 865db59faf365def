// The kitchen end to end on real servers: an order is paid over TLS 1.3, cooked by the robots,
// written off, exported to 1C and reported to the tenant; a gateway timeout never charges twice;
// orders the stock cannot serve and bodies carrying card numbers are refused.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { SETTLE_MS } from '../services/domains/kitchen/onec-export.js';
import type { Kitchen } from '../services/kitchen/service.js';
import { DECLINED_CARD } from '../services/simulators/payment-gateway/server.js';
import { waitFor } from './support/context.js';
import {
  seedMenuAndStock,
  stockApplied,
  startKitchenStack,
  type KitchenStack,
} from './support/kitchen.js';

let s: KitchenStack;
let kitchen: Kitchen;
/** The export scheduler's clock; moved past the hour's end (and settle time) to export it. */
let clockAheadMs = 0;

beforeAll(async () => {
  s = await startKitchenStack('kflow');
  kitchen = await s.startKitchen({ now: () => new Date(Date.now() + clockAheadMs) });
  await seedMenuAndStock(s);
  await stockApplied(s);
});
afterAll(async () => {
  await s?.close();
});

async function placeOrder(
  tenant: string,
  items = [
    { dishId: 'borscht', quantity: 2 },
    { dishId: 'salad', quantity: 1 },
  ],
) {
  const token = await s.idp.token(tenant);
  const r = await s.call('POST', '/v1/kitchen/orders', { token, body: { items } });
  expect(r.status).toBe(201);
  return {
    token,
    orderId: r.body.order.orderId as string,
    total: r.body.order.totalMinor as number,
  };
}

const orderState = async (id: string) =>
  (await s.ctx.db('kitchen_orders').where({ id }).first())?.state as string;

describe('kitchen order flow', () => {
  test('an order is paid, produced, written off, reported to the tenant and exported to 1C once', async () => {
    await s.watchTenant('tenant-happy');
    const { token, orderId, total } = await placeOrder('tenant-happy');
    expect(total).toBe(2 * 45_000 + 30_000);
    const pay = await s.call('POST', `/v1/kitchen/orders/${orderId}/payment`, {
      token,
      body: { cardToken: s.gateway.tokenize('4111111111111111') },
    });
    expect(pay.status).toBe(202);
    expect(pay.body.order.state).toBe('payment_pending');

    await waitFor(async () => (await orderState(orderId)) === 'produced', 15_000, 'order produced');
    expect(s.gateway.charges.filter((c) => c.orderId === orderId)).toHaveLength(1);
    expect([...s.robots.productions.values()].filter((p) => p.orderId === orderId)).toHaveLength(1);
    const offs = await s.ctx
      .db('kitchen_write_offs')
      .where({ order_id: orderId })
      .orderBy('ingredient');
    expect(offs.map((w) => [w.ingredient, Number(w.quantity)])).toEqual([
      ['beef', 160],
      ['beet', 300.5],
      ['walnut', 15],
    ]);
    const beet = await s.call('GET', '/v1/kitchen/stock', { apiKey: s.operatorKey });
    expect(
      beet.body.stock.find((x: { ingredient: string }) => x.ingredient === 'beet').quantity,
    ).toBe(5_000 - 300.5);

    // The tenant hears every step over the tenant event channel the WebSocket forwards.
    const states = await waitFor(
      () => {
        const seen = s.events
          .filter((e) => e.tenantId === 'tenant-happy' && e.event.type === 'order.status')
          .map((e) => e.event.state);
        return seen.includes('produced') ? seen : undefined;
      },
      10_000,
      'order.status events',
    );
    // Cooking may or may not be seen between polls; each state arrives once per change, in order.
    expect(states.filter((state, i) => state !== states[i - 1])).toEqual([
      'payment_pending',
      'paid',
      'in_production',
      'produced',
    ]);

    clockAheadMs = 3_600_000 + SETTLE_MS;
    await kitchen.scheduleExports();
    const docs = await waitFor(
      () => {
        const mine = s.onec.documents.filter((d) => JSON.stringify(d.body).includes(orderId));
        return mine.length === 3 ? mine : undefined;
      },
      10_000,
      '1C documents of the order',
    );
    expect(docs.map((d) => d.entity).sort()).toEqual([
      'Document_ОперацияПоПлатежнойКарте',
      'Document_РеализацияТоваровУслуг',
      'Document_ТребованиеНакладная',
    ]);
    expect(
      docs.find((d) => d.entity === 'Document_РеализацияТоваровУслуг')?.body.СуммаДокумента,
    ).toBe(1_200);
    const got = await s.call('GET', `/v1/kitchen/orders/${orderId}`, { token });
    expect(got.body.order).toMatchObject({ state: 'produced', orderId });
  });

  test('a gateway timeout is retried with the same idempotency key and charges the card once', async () => {
    const { token, orderId } = await placeOrder('tenant-timeout', [
      { dishId: 'salad', quantity: 1 },
    ]);
    s.gateway.faults.add('timeout');
    const callsBefore = s.gateway.calls;
    await s.call('POST', `/v1/kitchen/orders/${orderId}/payment`, {
      token,
      body: { cardToken: s.gateway.tokenize('5555555555554444') },
    });
    await waitFor(
      async () => ['paid', 'in_production', 'produced'].includes(await orderState(orderId)),
      15_000,
      'order paid',
    );
    expect(s.gateway.calls - callsBefore).toBeGreaterThanOrEqual(2);
    expect(s.gateway.charges.filter((c) => c.orderId === orderId)).toHaveLength(1);
    const payment = await s.ctx.db('kitchen_payments').where({ order_id: orderId }).first();
    expect(payment).toMatchObject({ outcome: 'approved', card_token: null });
    expect(payment.attempts).toBeGreaterThanOrEqual(2);
  });

  test('a declined card leaves the order payment_declined with the reason, and another card may pay it', async () => {
    const { token, orderId } = await placeOrder('tenant-decline', [
      { dishId: 'salad', quantity: 1 },
    ]);
    await s.call('POST', `/v1/kitchen/orders/${orderId}/payment`, {
      token,
      body: { cardToken: s.gateway.tokenize(DECLINED_CARD) },
    });
    await waitFor(
      async () => (await orderState(orderId)) === 'payment_declined',
      10_000,
      'declined',
    );
    const got = await s.call('GET', `/v1/kitchen/orders/${orderId}`, { token });
    expect(got.body.order.reason).toMatch(/declined/);
    const again = await s.call('POST', `/v1/kitchen/orders/${orderId}/payment`, {
      token,
      body: { cardToken: s.gateway.tokenize('4111111111111111') },
    });
    expect(again.status).toBe(202);
    await waitFor(
      async () => ['paid', 'in_production', 'produced'].includes(await orderState(orderId)),
      10_000,
      'paid with the second card',
    );
  });

  test('an order needing an expired or missing ingredient is refused with 409 naming it, and nothing is stored', async () => {
    await s.warehouse.send('stock.expiry', {
      ingredient: 'walnut',
      expiresAt: new Date(Date.now() - 60_000).toISOString(),
    });
    await waitFor(
      async () =>
        (await s.ctx.db('kitchen_stock').where({ ingredient: 'walnut' }).first())?.expires_at <
        new Date(),
      10_000,
      'expiry applied',
    );
    const before = await s.ctx.db('kitchen_orders').count<{ c: string }[]>('* as c');
    const token = await s.idp.token('tenant-refused');
    const r = await s.call('POST', '/v1/kitchen/orders', {
      token,
      body: { items: [{ dishId: 'salad', quantity: 1 }] },
    });
    expect(r.status).toBe(409);
    expect(r.body.error).toMatchObject({
      code: 'ingredients_unavailable',
      details: { shortages: [{ ingredient: 'walnut', reason: 'expired' }] },
    });
    expect(r.body.error.message).toMatch(/walnut expired/);
    const big = await s.call('POST', '/v1/kitchen/orders', {
      token,
      body: {
        items: [
          { dishId: 'borscht', quantity: 20 },
          { dishId: 'borscht', quantity: 20 },
        ],
      },
    });
    expect(big.body.error.details.shortages).toContainEqual(
      expect.objectContaining({ ingredient: 'beet', reason: 'out_of_stock' }),
    );
    expect(await s.ctx.db('kitchen_orders').count<{ c: string }[]>('* as c')).toEqual(before);
  });

  test('a body carrying a card number is refused with card_number_rejected wherever it hides', async () => {
    const token = await s.idp.token('tenant-pan');
    const r = await s.call('POST', '/v1/kitchen/orders', {
      token,
      body: { items: [{ dishId: 'salad', quantity: 1 }], note: 'card 4111 1111 1111 1111' },
    });
    expect(r.status).toBe(422);
    expect(r.body.error).toMatchObject({
      code: 'card_number_rejected',
      details: { path: '$.note' },
    });
    const pay = await s.call(
      'POST',
      '/v1/kitchen/orders/00000000-0000-4000-8000-000000000000/payment',
      { token, body: { cardToken: '4111111111111111' } },
    );
    expect(pay.body.error.code).toBe('card_number_rejected');
  });
});
