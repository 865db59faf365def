// The hourly 1C export on real PostgreSQL and the 1C OData simulator: hours missed while no replica
// ran are caught up, an interrupted hour resumes without sending a document twice, and two
// replicas export each hour exactly once.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ONEC_EXPORT_JOB, SETTLE_MS } from '../services/domains/kitchen/onec-export.js';
import { waitFor } from './support/context.js';
import { startKitchenStack, type KitchenStack } from './support/kitchen.js';

let s: KitchenStack;
const HOUR = 3_600_000;
const hourKey = (hoursAgo: number) =>
  new Date(Math.floor(Date.now() / HOUR) * HOUR - hoursAgo * HOUR).toISOString().slice(0, 13);

beforeAll(async () => {
  s = await startKitchenStack('konec');
});
afterAll(async () => {
  await s?.close();
});

/** A produced, paid order with its write-off, all stamped `at`. */
async function producedOrder(
  at: Date,
  what = { dishId: 'salad', dish: 'Beet salad', ingredient: 'beet' },
): Promise<string> {
  const id = randomUUID();
  await s.ctx.db('kitchen_orders').insert({
    id,
    tenant_id: 'tenant-1c',
    state: 'produced',
    items: JSON.stringify([
      { dishId: what.dishId, name: what.dish, quantity: 1, priceMinor: 30_000 },
    ]),
    total_minor: 30_000,
    currency: 'RUB',
    created_at: at,
    updated_at: at,
    paid_at: at,
    produced_at: at,
  });
  await s.ctx.db('kitchen_payments').insert({
    order_id: id,
    idempotency_key: randomUUID(),
    amount_minor: 30_000,
    currency: 'RUB',
    outcome: 'approved',
    gateway_payment_id: `pay-${id.slice(0, 8)}`,
    settled_at: at,
    status: 2,
  });
  await s.ctx.db('kitchen_write_offs').insert({
    order_id: id,
    ingredient: what.ingredient,
    quantity: 60.5,
    unit: 'g',
    written_off_at: at,
  });
  return id;
}

/** An order charged, then refunded after its production failed, all stamped `at`. */
async function refundedOrder(at: Date): Promise<string> {
  const id = randomUUID();
  await s.ctx.db('kitchen_orders').insert({
    id,
    tenant_id: 'tenant-1c',
    state: 'refunded',
    reason: 'fryer fault',
    items: JSON.stringify([
      { dishId: 'salad', name: 'Beet salad', quantity: 1, priceMinor: 30_000 },
    ]),
    total_minor: 30_000,
    currency: 'RUB',
    created_at: at,
    updated_at: at,
    paid_at: at,
    refunded_at: at,
  });
  await s.ctx.db('kitchen_payments').insert({
    order_id: id,
    idempotency_key: randomUUID(),
    amount_minor: 30_000,
    currency: 'RUB',
    outcome: 'approved',
    gateway_payment_id: `pay-${id.slice(0, 8)}`,
    settled_at: at,
    status: 2,
  });
  await s.ctx.db('kitchen_refunds').insert({
    order_id: id,
    idempotency_key: `refund:${id}`,
    gateway_payment_id: `pay-${id.slice(0, 8)}`,
    amount_minor: 30_000,
    currency: 'RUB',
    reason: 'fryer fault',
    outcome: 'refunded',
    gateway_refund_id: `re-${id.slice(0, 8)}`,
    refunded_at: at,
    status: 2,
  });
  return id;
}

const midHour = (hoursAgo: number) =>
  new Date(new Date(`${hourKey(hoursAgo)}:00:00Z`).getTime() + 30 * 60_000);
const docsOf = (orderId: string) =>
  s.onec.documents.filter((d) => JSON.stringify(d.body).includes(orderId));
const runOf = (key: string) =>
  s.ctx.db('periodic_runs').where({ name: ONEC_EXPORT_JOB, period_key: key }).first();

describe('hourly 1C export', () => {
  test('hours missed while the service was down are exported when it comes back, already exported hours are not', async () => {
    const exported = await producedOrder(midHour(5));
    const missed = await producedOrder(midHour(3));
    const interrupted = [await producedOrder(midHour(2)), await producedOrder(midHour(2))];
    const refunded = await refundedOrder(midHour(3));
    // Earlier replicas exported every hour of the window except 3 and 2 hours ago, then stopped.
    for (const h of [6, 5, 4, 1]) {
      await s.ctx
        .db('periodic_runs')
        .insert({ name: ONEC_EXPORT_JOB, period_key: hourKey(h), status: 2 });
    }
    // 1C records the first document but its answer is lost; the next one fails with a 500.
    s.onec.faults.add('lost');
    s.onec.faults.add('error');

    await s.startKitchen();
    await waitFor(
      async () =>
        (await runOf(hourKey(3)))?.status === 2 && (await runOf(hourKey(2)))?.status === 2,
      15_000,
      'missed hours exported',
    );

    expect(docsOf(exported)).toHaveLength(0);
    expect(docsOf(missed)).toHaveLength(3);
    for (const id of interrupted) expect(docsOf(id)).toHaveLength(3);
    // A refunded order was paid and paid back: two card operations, no sale, no write-off.
    expect(
      docsOf(refunded)
        .map((d) => `${d.entity} ${String(d.body.ВидОперации)}`)
        .sort(),
    ).toEqual([
      'Document_ОперацияПоПлатежнойКарте ВозвратПокупателю',
      'Document_ОперацияПоПлатежнойКарте ОплатаПокупателя',
    ]);
    const refKeys = s.onec.documents.map((d) => d.refKey);
    expect(new Set(refKeys).size).toBe(refKeys.length);
    expect((await runOf(hourKey(2))).attempts).toBeGreaterThanOrEqual(2);
    // The catalog entries the documents point at went first, once each, whatever the lost answer.
    const catalog = s.onec.documents.filter((d) => d.entity.startsWith('Catalog_'));
    expect(catalog.map((d) => `${d.entity}: ${String(d.body.Description)}`).sort()).toEqual([
      'Catalog_Контрагенты: Розничный покупатель',
      'Catalog_Номенклатура: Beet salad',
      'Catalog_Номенклатура: beet',
    ]);
    const keyOf = (description: string) =>
      catalog.find((d) => d.body.Description === description)?.refKey;
    const sale = docsOf(missed).find((d) => d.entity === 'Document_РеализацияТоваровУслуг');
    expect(sale?.body).toMatchObject({
      Контрагент_Key: keyOf('Розничный покупатель'),
      Товары: [{ Номенклатура_Key: keyOf('Beet salad') }],
    });
    const requisition = docsOf(missed).find((d) => d.entity === 'Document_ТребованиеНакладная');
    expect(requisition?.body).toMatchObject({ Материалы: [{ Номенклатура_Key: keyOf('beet') }] });
    expect(await s.ctx.db('kitchen_onec_documents').where({ state: 'sending' })).toHaveLength(0);
  });

  test('two replicas export each hour exactly once', async () => {
    // One instant for data, hour key and clocks, so an hour boundary during the test changes nothing.
    const at = new Date();
    const key = at.toISOString().slice(0, 13);
    const now = [await producedOrder(at), await producedOrder(at)];
    const sentBefore = s.onec.documents.length;
    // Both replicas' clocks say the current hour has ended and settled.
    const ahead = () => new Date(at.getTime() + HOUR + SETTLE_MS);
    const [a, b] = [await s.startKitchen({ now: ahead }), await s.startKitchen({ now: ahead })];
    await Promise.all([a.scheduleExports(), b.scheduleExports()]);
    await waitFor(async () => (await runOf(key))?.status === 2, 15_000, 'current hour exported');
    for (const id of now) expect(docsOf(id)).toHaveLength(3);
    // Three documents per order; the catalog entries they use were sent by an earlier hour.
    expect(s.onec.documents.length - sentBefore).toBe(6);
    const runs = await s.ctx.db('periodic_runs').where({ name: ONEC_EXPORT_JOB, period_key: key });
    expect(runs).toHaveLength(1);
    expect(runs[0].attempts).toBe(1);
    const refKeys = s.onec.documents.map((d) => d.refKey);
    expect(new Set(refKeys).size).toBe(refKeys.length);
  });

  test('two replicas exporting two hours at once send a catalog entry both hours use once, however slowly 1C writes', async () => {
    // The next two hours (the current one was exported above), both with a dish 1C has not seen;
    // both replicas' clocks say both hours have ended, so each claims one and they run side by side.
    const hours = [1, 2].map((h) => new Date(Date.now() + h * HOUR));
    const keys = hours.map((d) => d.toISOString().slice(0, 13));
    const borscht = { dishId: 'borscht', dish: 'Borscht', ingredient: 'cabbage' };
    const orders = [
      await producedOrder(hours[0]!, borscht),
      await producedOrder(hours[1]!, borscht),
    ];
    s.onec.writeMs = 300;
    try {
      const ahead = () => new Date(hours[1]!.getTime() + HOUR + SETTLE_MS);
      const [a, b] = [await s.startKitchen({ now: ahead }), await s.startKitchen({ now: ahead })];
      await Promise.all([a.scheduleExports(), b.scheduleExports()]);
      await waitFor(
        async () => (await runOf(keys[0]!))?.status === 2 && (await runOf(keys[1]!))?.status === 2,
        30_000,
        'both hours exported',
      );
    } finally {
      s.onec.writeMs = 0;
    }
    for (const id of orders) expect(docsOf(id)).toHaveLength(3);
    const catalog = s.onec.documents.filter(
      (d) =>
        d.entity === 'Catalog_Номенклатура' &&
        ['Borscht', 'cabbage'].includes(String(d.body.Description)),
    );
    expect(catalog.map((d) => String(d.body.Description)).sort()).toEqual(['Borscht', 'cabbage']);
    const refKeys = s.onec.documents.map((d) => d.refKey);
    expect(new Set(refKeys).size).toBe(refKeys.length);
  });
});
