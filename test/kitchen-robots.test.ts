// Production against the robots simulator: 5 s-style timeouts are retried with backoff under the
// same order id (never cooking twice), and an order whose robots keep failing fails, visibly, and is
// refunded with the reason kept.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { waitFor } from './support/context.js';
import {
  seedMenuAndStock,
  stockApplied,
  startKitchenStack,
  type KitchenStack,
} from './support/kitchen.js';

let s: KitchenStack;

beforeAll(async () => {
  s = await startKitchenStack('krobots');
  await s.startKitchen();
  await seedMenuAndStock(s);
  await stockApplied(s);
});
afterAll(async () => {
  await s?.close();
});

async function paidOrder(tenant: string): Promise<{ orderId: string; token: string }> {
  const token = await s.idp.token(tenant);
  const r = await s.call('POST', '/v1/kitchen/orders', {
    token,
    body: { items: [{ dishId: 'borscht', quantity: 1 }] },
  });
  const orderId = r.body.order.orderId as string;
  await s.call('POST', `/v1/kitchen/orders/${orderId}/payment`, {
    token,
    body: { cardToken: s.gateway.tokenize('4111111111111111') },
  });
  return { orderId, token };
}

const callsFor = (orderId: string) =>
  [...s.robots.productions.values()].filter((p) => p.orderId === orderId).length;

describe('production on the robots', () => {
  test('robots timing out twice then answering make 3 calls and one production', async () => {
    s.robots.faults.add('timeout', 2);
    const before = { calls: s.robots.calls, duplicates: s.robots.duplicates };
    const { orderId } = await paidOrder('tenant-slow');
    const row = await waitFor(
      async () => {
        const o = await s.ctx.db('kitchen_orders').where({ id: orderId }).first();
        return o?.state === 'produced' ? o : undefined;
      },
      15_000,
      'order produced',
    );
    expect(row.reason).toBeNull();
    expect(s.robots.calls - before.calls).toBe(3);
    // The two timed-out calls were accepted by the robots: the third was recognised as a repeat.
    expect(s.robots.duplicates - before.duplicates).toBe(2);
    expect(callsFor(orderId)).toBe(1);
  });

  test('robots failing 4 times fail the order after 3 retries; it is refunded with the reason visible', async () => {
    s.robots.faults.add('error', 4);
    const before = s.robots.calls;
    const { orderId, token } = await paidOrder('tenant-broken');
    const got = await waitFor(
      async () => {
        const r = await s.call('GET', `/v1/kitchen/orders/${orderId}`, { token });
        return r.body.order.state === 'refunded' ? r.body.order : undefined;
      },
      15_000,
      'order failed and refunded',
    );
    // The tenant reads the hub's sentence; the robots' answer is kept for operators only.
    expect(got.reason).toBe('sending to the robots failed after 4 attempts');
    expect(s.robots.calls - before).toBe(4);
    expect(callsFor(orderId)).toBe(0);
    const production = await s.ctx.db('kitchen_production').where({ order_id: orderId }).first();
    expect(production).toMatchObject({ status: 3, attempts: 4 });
    expect(production.last_error).toMatch(/503/);
  });

  test('cooking that fails at the robots fails the order, keeps their free text for operators only and writes nothing off', async () => {
    const { orderId } = await paidOrder('tenant-burnt');
    s.robots.failCooking.add(orderId);
    await waitFor(
      async () =>
        (await s.ctx.db('kitchen_orders').where({ id: orderId }).first())?.state === 'refunded',
      15_000,
      'order failed and refunded',
    );
    const o = await s.ctx.db('kitchen_orders').where({ id: orderId }).first();
    expect(o.reason).toBe('the robots could not cook it');
    const production = await s.ctx.db('kitchen_production').where({ order_id: orderId }).first();
    expect(production.last_error).toMatch(/fryer fault/);
    expect(await s.ctx.db('kitchen_write_offs').where({ order_id: orderId })).toHaveLength(0);
  });
});
