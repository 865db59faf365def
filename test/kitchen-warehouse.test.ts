// Warehouse webhooks on the real API: signed deliveries change the stock once; a bad signature, a
// stale timestamp or a replayed webhook-id changes nothing; rotated secrets are both accepted.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { waitFor } from './support/context.js';
import { startKitchenStack, WAREHOUSE_NEXT_SECRET, type KitchenStack } from './support/kitchen.js';

let s: KitchenStack;

beforeAll(async () => {
  s = await startKitchenStack('kwarehouse');
  await s.startKitchen();
});
afterAll(async () => {
  await s?.close();
});

const stockOf = async (ingredient: string) => {
  const r = await s.call('GET', '/v1/kitchen/stock', { apiKey: s.operatorKey });
  return (
    r.body.stock as {
      ingredient: string;
      quantity: number;
      expiresAt: string | null;
      expired: boolean;
    }[]
  ).find((x) => x.ingredient === ingredient);
};
const eventCount = async () =>
  Number((await s.ctx.db('kitchen_warehouse_events').count<{ c: string }[]>('* as c'))[0]?.c);

describe('warehouse webhooks', () => {
  test('a signed level and a receipt are applied once and the stock is queryable', async () => {
    const level = await s.warehouse.send('stock.level', {
      ingredient: 'flour',
      quantity: 1000,
      unit: 'g',
      expiresAt: '2099-01-01T00:00:00Z',
    });
    expect(level).toMatchObject({ status: 200, body: { status: 'accepted' } });
    const receipt = await s.warehouse.send('stock.receipt', {
      ingredient: 'flour',
      quantity: 250,
      unit: 'g',
      expiresAt: '2098-06-01T00:00:00Z',
    });
    expect(receipt.status).toBe(200);
    const flour = await waitFor(
      async () => {
        const x = await stockOf('flour');
        return x?.quantity === 1250 ? x : undefined;
      },
      10_000,
      'receipt applied',
    );
    expect(flour).toMatchObject({ expiresAt: '2098-06-01T00:00:00.000Z', expired: false });
  });

  test('a bad signature, a stale timestamp or a replayed id is refused or ignored and changes nothing', async () => {
    await s.warehouse.send('stock.level', { ingredient: 'salt', quantity: 500, unit: 'g' });
    await waitFor(async () => (await stockOf('salt'))?.quantity === 500, 10_000, 'salt level');
    const before = await eventCount();

    const wrongKey = `whsec_${randomBytes(24).toString('base64')}`;
    const forged = await s.warehouse.send(
      'stock.level',
      { ingredient: 'salt', quantity: 0, unit: 'g' },
      { secret: wrongKey },
    );
    expect(forged).toMatchObject({ status: 401, body: { error: { code: 'invalid_signature' } } });

    const stale = await s.warehouse.send(
      'stock.level',
      { ingredient: 'salt', quantity: 0, unit: 'g' },
      { timestamp: Math.floor(Date.now() / 1000) - 600 },
    );
    expect(stale).toMatchObject({
      status: 401,
      body: { error: { code: 'timestamp_out_of_tolerance' } },
    });

    const unsigned = await s.warehouse.send(
      'stock.level',
      { ingredient: 'salt', quantity: 0, unit: 'g' },
      { signature: '' },
    );
    expect(unsigned).toMatchObject({ status: 400, body: { error: { code: 'missing_headers' } } });

    const first = await s.warehouse.send('stock.receipt', {
      ingredient: 'salt',
      quantity: 100,
      unit: 'g',
    });
    expect(first.body).toEqual({ status: 'accepted' });
    await waitFor(async () => (await stockOf('salt'))?.quantity === 600, 10_000, 'receipt applied');
    // The same delivery again (a redelivery, or an attacker replaying it) is acknowledged and ignored.
    const replay = await s.warehouse.send(
      'stock.receipt',
      { ingredient: 'salt', quantity: 100, unit: 'g' },
      { id: first.id },
    );
    expect(replay).toMatchObject({ status: 200, body: { status: 'duplicate' } });

    expect(await eventCount()).toBe(before + 1);
    // Let the applier drain, then check that the stock counts the receipt once.
    await waitFor(
      async () =>
        Number(
          (
            await s.ctx
              .db('kitchen_warehouse_events')
              .whereIn('status', [0, 1])
              .count<{ c: string }[]>('* as c')
          )[0]?.c,
        ) === 0,
      10_000,
      'applier idle',
    );
    expect((await stockOf('salt'))?.quantity).toBe(600);
  });

  test('during a secret rotation, deliveries signed with the new secret, or with an unknown and the new one, are accepted', async () => {
    const next = await s.warehouse.send(
      'stock.level',
      { ingredient: 'sugar', quantity: 300, unit: 'g' },
      { secret: WAREHOUSE_NEXT_SECRET },
    );
    expect(next).toMatchObject({ status: 200, body: { status: 'accepted' } });
    const retired = `whsec_${randomBytes(24).toString('base64')}`;
    const both = await s.warehouse.send(
      'stock.receipt',
      { ingredient: 'sugar', quantity: 50, unit: 'g' },
      { secrets: [retired, WAREHOUSE_NEXT_SECRET] },
    );
    expect(both).toMatchObject({ status: 200, body: { status: 'accepted' } });
    const onlyRetired = await s.warehouse.send(
      'stock.receipt',
      { ingredient: 'sugar', quantity: 50, unit: 'g' },
      { secret: retired },
    );
    expect(onlyRetired).toMatchObject({
      status: 401,
      body: { error: { code: 'invalid_signature' } },
    });
    await waitFor(
      async () => (await stockOf('sugar'))?.quantity === 350,
      10_000,
      'sugar level and receipt',
    );
  });

  test('an older level arriving late does not overwrite a newer one', async () => {
    const now = Math.floor(Date.now() / 1000);
    await s.warehouse.send(
      'stock.level',
      { ingredient: 'milk', quantity: 700, unit: 'ml' },
      { timestamp: now },
    );
    await s.warehouse.send(
      'stock.level',
      { ingredient: 'milk', quantity: 900, unit: 'ml' },
      { timestamp: now - 60 },
    );
    await waitFor(
      async () =>
        Number(
          (
            await s.ctx
              .db('kitchen_warehouse_events')
              .whereIn('status', [0, 1])
              .count<{ c: string }[]>('* as c')
          )[0]?.c,
        ) === 0,
      10_000,
      'applier idle',
    );
    expect((await stockOf('milk'))?.quantity).toBe(700);
  });

  test('an event of an unknown shape is refused with 422 and stored nowhere', async () => {
    const before = await eventCount();
    const r = await s.warehouse.send('stock.level', {
      ingredient: 'Bad Name!',
      quantity: -1,
      unit: 'kg',
    });
    expect(r).toMatchObject({ status: 422, body: { error: { code: 'invalid_event' } } });
    expect(await eventCount()).toBe(before);
  });
});
