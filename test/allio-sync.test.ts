// The ALLIO sync end to end on the real servers: webhook rows become tasks, the worker fetches
// from the ALLIO simulator through the Redis limiter and writes the CRM tables.
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { WorkListener } from '../services/core/engine/notify.js';
import { replayFailed } from '../services/core/engine/work-table.js';
import { startAllioSimulator, type AllioSimulator } from '../services/simulators/allio/server.js';
import { createTestContext, DATABASE_URL, waitFor, type TestContext } from './support/context.js';
import { addIntegration, count, startSync } from './support/allio.js';
import type { AllioSync } from '../services/allio-sync/service.js';

let ctx: TestContext;
let sim: AllioSimulator;
const running: AllioSync[] = [];

beforeAll(async () => {
  ctx = await createTestContext('sync');
  sim = await startAllioSimulator({ token: 'test-token' });
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop(2_000)));
});
afterAll(async () => {
  await sim.close();
  await ctx.close();
});

async function webhook(integrationId: string, uuid: string, command: string, indexes: number[]) {
  await ctx.db('allio_webhook').insert({
    integration_id: integrationId,
    integration_uuid: uuid,
    command,
    external_ids_array: JSON.stringify(indexes),
  });
}

/** Waits until the integration's only task reaches `status`, and returns it. */
function onlyTaskWhen(integrationId: string, status: number, timeoutMs: number, what: string) {
  return waitFor(
    async () => {
      const t = await ctx.db('allio_tasks').where({ integration_id: integrationId }).first();
      return t?.status === status ? t : undefined;
    },
    timeoutMs,
    what,
  );
}

describe('allio sync', () => {
  test('webhooks become tasks and the worker writes reservations, deals and their contacts', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: sim.url });
    const listener = new WorkListener(DATABASE_URL, ctx.schema, ctx.logger);
    running.push(await startSync(ctx, { listener, pollMaxMs: 5_000 }));
    await listener.start();
    try {
      await webhook(it.id, it.uuid, 'RESERVE_ADD', [7, 8, 9]);
      await webhook(it.id, it.uuid, 'DEALCARD_ADD', [21, 22]);
      await webhook(it.id, it.uuid, 'SPACE_CHANGED', [1]);
      await waitFor(
        async () => (await count(ctx.db, 'allio_tasks', { status: 2 })) === 2,
        10_000,
        'tasks done',
      );
    } finally {
      await listener.stop();
    }
    const webhooks = await ctx.db('allio_webhook').orderBy('id');
    expect(webhooks.map((w) => w.status)).toEqual([2, 2, 2]);
    expect(webhooks[2].skip_reason).toMatch(/SPACE_CHANGED is not synchronised/);
    const tasks = await ctx.db('allio_tasks').orderBy('id');
    expect(tasks.map((t) => [t.entity, t.external_ids, t.status])).toEqual([
      ['reserve', '[7,8,9]', 2],
      ['dealcard', '[21,22]', 2],
    ]);

    const r7 = await ctx
      .db('crm_reservations')
      .where({ integration_id: it.id, external_id: '7' })
      .first();
    expect(r7.custom_fields).toMatchObject({
      status: expect.any(String),
      manager: { fullname: expect.any(String) },
    });
    expect(r7.created_at).toBeInstanceOf(Date);
    const c7 = await ctx.db('crm_contacts').where({ id: r7.contact_id }).first();
    // Record 7's phone is '#ERROR!' in the simulator: stored as null, raw value kept.
    expect(c7).toMatchObject({ phone: null, phone_raw: '#ERROR!' });
    expect(c7.custom_fields).toMatchObject({ first: expect.any(String), last: expect.any(String) });
    const r8 = await ctx.db('crm_reservations').where({ external_id: '8' }).first();
    const c8 = await ctx.db('crm_contacts').where({ id: r8.contact_id }).first();
    expect(c8.phone).toMatch(/^\+7\d{10}$/);

    const deal = await ctx.db('crm_deals').where({ external_id: '21' }).first();
    expect(deal.contact_id).not.toBeNull();
    expect(deal.custom_fields).toHaveProperty('client');
    expect(deal.custom_fields).not.toHaveProperty('buyer');
    expect(await count(ctx.db, 'crm_deals', { integration_id: it.id })).toBe(2);
  });

  test('shutdown out of patience: the webhook in hand finishes, the webhooks of its batch not yet started are handed back untouched', async () => {
    // Inactive: the tasks planned stay where they are, no sync worker takes them.
    const it = await addIntegration(ctx.db, { baseUrl: sim.url, active: false });
    // Planning a webhook inserts its task: a lock on the task table holds the first webhook of the
    // batch in the middle of its transaction while the shutdown runs out of patience.
    const lock = await ctx.db.transaction();
    await lock.raw('lock table allio_tasks in share mode');
    let sync: AllioSync | undefined;
    try {
      for (let i = 0; i < 5; i++) await webhook(it.id, it.uuid, 'RESERVE_ADD', [1100 + i]);
      sync = await startSync(ctx);
      await waitFor(
        async () =>
          (await count(ctx.db, 'allio_webhook', { integration_id: it.id, status: 1 })) === 5,
        10_000,
        'the batch claimed',
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      const stopping = sync.stop(300);
      await new Promise((resolve) => setTimeout(resolve, 700));
      await lock.commit();
      await stopping;
      sync = undefined;
    } finally {
      if (!lock.isCompleted()) await lock.rollback();
      await sync?.stop(2_000);
    }
    const rows = await ctx.db('allio_webhook').where({ integration_id: it.id }).orderBy('id');
    expect(rows.filter((w) => w.status === 2)).toHaveLength(1);
    const released = rows.filter((w) => w.status !== 2);
    expect(released.map((w) => [w.status, w.attempts, w.locked_by])).toEqual(
      Array.from({ length: 4 }, () => [0, 0, null]),
    );
    expect(await count(ctx.db, 'allio_tasks', { integration_id: it.id })).toBe(1);
  });

  test('a duplicate webhook changes nothing in the CRM', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: sim.url });
    running.push(await startSync(ctx));
    await webhook(it.id, it.uuid, 'RESERVE_MOD', [30, 31]);
    await waitFor(
      async () => (await count(ctx.db, 'crm_reservations', { integration_id: it.id })) === 2,
    );
    const before = await ctx
      .db('crm_reservations')
      .where({ integration_id: it.id })
      .orderBy('external_id');
    const contactsBefore = await count(ctx.db, 'crm_contacts', { integration_id: it.id });
    await webhook(it.id, it.uuid, 'RESERVE_MOD', [30, 31]);
    await waitFor(
      async () =>
        (await count(ctx.db, 'allio_webhook', { integration_id: it.id, status: 2 })) === 2,
    );
    await waitFor(
      async () =>
        (await ctx.db('allio_tasks').where({ integration_id: it.id }).whereIn('status', [0, 1]))
          .length === 0,
    );
    const after = await ctx
      .db('crm_reservations')
      .where({ integration_id: it.id })
      .orderBy('external_id');
    expect(after.map((r) => [r.id, r.external_id, r.contact_id, r.custom_fields])).toEqual(
      before.map((r) => [r.id, r.external_id, r.contact_id, r.custom_fields]),
    );
    expect(await count(ctx.db, 'crm_contacts', { integration_id: it.id })).toBe(contactsBefore);
  });

  test('many small tasks are batched into requests of at most 100 distinct ids', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: sim.url });
    sim.reset();
    // 60 webhooks of 5 ids each, with every id sent twice: 150 distinct ids.
    for (let i = 0; i < 60; i++) {
      const start = 1000 + (i % 30) * 5;
      await webhook(it.id, it.uuid, 'RESERVE_ADD', [
        start,
        start + 1,
        start + 2,
        start + 3,
        start + 4,
      ]);
    }
    // The sync worker claims only for active integrations: it waits until every webhook is planned,
    // so how the batches fall does not depend on how fast the webhook reconciler runs.
    await ctx.db('allio_integrations').where({ id: it.id }).update({ active: false });
    running.push(await startSync(ctx));
    await waitFor(
      async () =>
        (await count(ctx.db, 'allio_webhook', { integration_id: it.id, status: 2 })) === 60,
      15_000,
    );
    await ctx.db('allio_integrations').where({ id: it.id }).update({ active: true });
    // Nothing due and nothing in flight: a batch still waiting for its slot would be handed back by
    // the shutdown and taken by the next test's worker.
    await waitFor(
      async () =>
        (await ctx.db('allio_tasks').where({ integration_id: it.id }).whereIn('status', [0, 1]))
          .length === 0,
      30_000,
    );
    expect(await count(ctx.db, 'crm_reservations', { integration_id: it.id })).toBe(150);
    const stats = sim.stats();
    expect(stats.violations).toBe(0);
    // A pending task with the same ids is not planned twice: 30 tasks, 150 ids, 2 requests at best.
    expect(stats.idsRequested).toBe(150);
    expect(stats.served).toBeLessThanOrEqual(4);
  });

  test('a 5xx answer is retried with backoff, then the task completes', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: sim.url });
    sim.failNext(1, 503);
    running.push(await startSync(ctx));
    await webhook(it.id, it.uuid, 'RESERVE_ADD', [501]);
    const task = await onlyTaskWhen(it.id, 2, 15_000, 'task done after a retry');
    expect(task.attempts).toBe(2);
    expect(
      await count(ctx.db, 'crm_reservations', { integration_id: it.id, external_id: '501' }),
    ).toBe(1);
  });

  test('a 429 with Retry-After pauses the shared limiter and the task is retried no sooner than asked', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: sim.url });
    sim.reset();
    sim.failNext(1, 429, 2);
    const sync = await startSync(ctx);
    running.push(sync);
    const t0 = Date.now();
    await webhook(it.id, it.uuid, 'DEALCARD_ADD', [777]);
    const task = await onlyTaskWhen(it.id, 2, 15_000, 'task done after the pause');
    expect(task.attempts).toBe(2);
    expect(Date.now() - t0).toBeLessThan(8_000);
    const stats = sim.stats();
    expect(stats.requests).toBe(2);
    // The two arrivals as ALLIO saw them: the retry came about the 2 s it asked for after the 429,
    // not a quota window (1 s) later.
    expect((stats.lastRequestAt ?? 0) - (stats.firstRequestAt ?? 0)).toBeGreaterThanOrEqual(1_900);
  });

  test('a 401 fails the task permanently, keeps it visible, and it can be replayed', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: sim.url, token: 'wrong-token' });
    running.push(await startSync(ctx));
    await webhook(it.id, it.uuid, 'RESERVE_ADD', [601]);
    const task = await onlyTaskWhen(it.id, 3, 10_000, 'task failed');
    expect(task.attempts).toBe(1);
    expect(task.last_error).toMatch(/401/);

    // The operator fixes the token and replays the failed task.
    await ctx.db('allio_integrations').where({ id: it.id }).update({ api_token: 'test-token' });
    expect(
      await replayFailed(ctx.db, 'allio_tasks', (q) => q.where({ integration_id: it.id })),
    ).toEqual([task.id]);
    await waitFor(
      async () =>
        (await count(ctx.db, 'crm_reservations', { integration_id: it.id, external_id: '601' })) ===
        1,
    );
    const replayed = await ctx.db('allio_tasks').where({ id: task.id }).first();
    expect(replayed).toMatchObject({ status: 2, attempts: 1 });
  });

  test('an integration reads its token from the mounted Secret; a missing Secret fails the task with its path', async () => {
    const secrets = await mkdtemp(path.join(tmpdir(), 'hub-secrets-'));
    const withSecret = await addIntegration(ctx.db, { baseUrl: sim.url, name: 'north' });
    await mkdir(path.join(secrets, 'allio-north'));
    await writeFile(path.join(secrets, 'allio-north', 'token'), 'test-token\n');
    await ctx.db('allio_integrations').where({ id: withSecret.id }).update({
      api_token: null,
      api_token_secret_name: 'allio-north',
      api_token_secret_key: 'token',
    });
    const missing = await addIntegration(ctx.db, { baseUrl: sim.url, name: 'south' });
    await ctx.db('allio_integrations').where({ id: missing.id }).update({
      api_token: null,
      api_token_secret_name: 'allio-south',
      api_token_secret_key: 'token',
    });
    running.push(await startSync(ctx, { env: { SECRETS_DIR: secrets } }));
    await webhook(withSecret.id, withSecret.uuid, 'RESERVE_ADD', [901]);
    await webhook(missing.id, missing.uuid, 'RESERVE_ADD', [902]);
    await onlyTaskWhen(withSecret.id, 2, 10_000, 'the task with a mounted token');
    const failed = await onlyTaskWhen(missing.id, 3, 10_000, 'the task without its Secret');
    expect(failed.last_error).toContain(
      `Secret allio-south/token is not mounted at ${path.join(secrets, 'allio-south', 'token')}`,
    );
    expect(failed.attempts).toBe(1);
  });
});
