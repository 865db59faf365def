// The demo's ALLIO webhooks: new ids keep coming, across restarts, so the CRM it fills keeps growing.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createTestContext, type TestContext } from './support/context.js';
import { addIntegration } from './support/allio.js';
import { demoWebhook, nextDemoId } from '../services/hub/demo.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext('hubdemo');
});
afterAll(async () => {
  await ctx.close();
});

/** The first `count` webhooks of a demo that starts at `nextId`. */
function run(nextId: number, count: number) {
  const sent = [];
  for (let n = 0; n < count; n++) {
    const w = demoWebhook(n, nextId);
    sent.push(w);
    nextId = w.nextId;
  }
  return { sent, nextId };
}

describe('demo webhooks', () => {
  test('*_ADD commands bring ids never sent before; the others touch ids already added', () => {
    const { sent, nextId } = run(1, 500);
    const added = sent.filter((w) => w.command.endsWith('_ADD')).flatMap((w) => w.indexes);
    expect(new Set(added).size).toBe(added.length);
    expect(Math.max(...sent.flatMap((w) => w.indexes))).toBe(nextId - 1);
    for (const w of sent.filter((x) => !x.command.endsWith('_ADD'))) {
      expect(w.indexes.length).toBeGreaterThan(0);
    }
    expect(added.length).toBeGreaterThan(300);
  });

  test('a demo restarted where the last one stopped sends none of its ids as new again', () => {
    const first = run(1, 50);
    const second = run(first.nextId, 50);
    const before = new Set(first.sent.flatMap((w) => w.indexes));
    for (const w of second.sent.filter((x) => x.command.endsWith('_ADD'))) {
      for (const id of w.indexes) expect(before.has(id)).toBe(false);
    }
  });

  test('the next id follows the largest the hub holds for the integration, in webhooks or CRM rows, and no other', async () => {
    const demo = await addIntegration(ctx.db, { baseUrl: 'http://127.0.0.1:9', name: 'demo-ids' });
    const other = await addIntegration(ctx.db, {
      baseUrl: 'http://127.0.0.1:9',
      name: 'other-ids',
    });
    expect(await nextDemoId(ctx.db, demo.id)).toBe(1);
    const webhook = (integration: { id: string; uuid: string }, ids: string) => ({
      integration_uuid: integration.uuid,
      integration_id: integration.id,
      command: 'RESERVE_ADD',
      external_ids_array: ids,
      status: 2,
    });
    await ctx
      .db('allio_webhook')
      .insert([
        webhook(demo, '[3,4,17]'),
        webhook(other, '[900000]'),
        webhook(demo, '{"not":"an array"}'),
      ]);
    expect(await nextDemoId(ctx.db, demo.id)).toBe(18);
    // Webhooks purged by retention: the CRM rows still say how far the demo got.
    await ctx.db('crm_deals').insert({ integration_id: demo.id, external_id: '250' });
    await ctx.db('crm_reservations').insert([
      { integration_id: demo.id, external_id: '120' },
      { integration_id: other.id, external_id: '700000' },
    ]);
    await ctx.db('allio_webhook').where({ integration_id: demo.id }).delete();
    expect(await nextDemoId(ctx.db, demo.id)).toBe(251);
  });
});
