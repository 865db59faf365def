// The webhook ingress's group commit and integration cache on real PostgreSQL: concurrent webhooks
// share statements yet each is answered with its own row; a full write queue answers 503 with
// Retry-After; a delivery repeated inside one batch is stored once; a changed, switched-off or
// re-keyed integration takes effect at once through NOTIFY, however long the cache would keep it.
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { FastifyInstance } from 'fastify';
import type { Knex } from 'knex';
import { IntegrationCache } from '../services/domains/allio/integration-cache.js';
import {
  deactivateIntegration,
  INTEGRATIONS,
  upsertIntegration,
} from '../services/domains/allio/integrations.js';
import { API_VERSION, allioIntegrationResource } from '../services/domains/allio/resource.js';
import { buildApi } from '../services/api/app.js';
import { intakeEnv, type IntakeConfig } from '../services/api/config.js';
import { registerWarehouseWebhook } from '../services/api/kitchen/warehouse-webhook.js';
import { writeWarehouseEvents } from '../services/api/intake-writers.js';
import { WorkListener } from '../services/core/engine/notify.js';
import { createMetrics, type Metrics } from '../services/core/metrics.js';
import { sign } from '../services/contracts/standard-webhooks.js';
import { addIntegration, count, type TestIntegration } from './support/allio.js';
import { createTestContext, DATABASE_URL, waitFor, type TestContext } from './support/context.js';

let ctx: TestContext;
let integration: TestIntegration;
const SECRET = `whsec_${randomBytes(24).toString('base64')}`;

beforeAll(async () => {
  ctx = await createTestContext('intake');
  integration = await addIntegration(ctx.db, { baseUrl: 'http://127.0.0.1:9' });
});
afterAll(async () => {
  await ctx.close();
});

async function startApi(
  o: { intake?: Partial<IntakeConfig>; metrics?: Metrics; cache?: IntegrationCache } = {},
): Promise<{ app: FastifyInstance; base: string }> {
  const intake = { ...intakeEnv.parse({}), ...o.intake };
  const metrics = o.metrics ?? createMetrics();
  const app = buildApi({
    db: ctx.db,
    logger: ctx.logger,
    metrics,
    readiness: [],
    intake,
    integrations: o.cache,
  });
  registerWarehouseWebhook(app, {
    db: ctx.db,
    metrics,
    secrets: [SECRET],
    toleranceSeconds: 300,
    intake,
  });
  return { app, base: await app.listen({ port: 0, host: '127.0.0.1' }) };
}

async function postAllio(
  base: string,
  key: string,
  payload: unknown,
  headers: Record<string, string> = {},
) {
  const res = await fetch(`${base}/webhooks/allio/${key}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(payload),
  });
  return {
    status: res.status,
    headers: res.headers,
    body: (await res.json()) as { status?: string; id?: number; error?: { code: string } },
  };
}

async function postWarehouse(base: string, id: string) {
  const body = JSON.stringify({
    type: 'stock.receipt',
    timestamp: new Date().toISOString(),
    data: { ingredient: 'flour', quantity: 5, unit: 'g' },
  });
  const ts = Math.floor(Date.now() / 1000);
  const res = await fetch(`${base}/webhooks/warehouse`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(ts),
      'webhook-signature': sign(SECRET, id, ts, body),
    },
    body,
  });
  return { status: res.status, body: (await res.json()) as { status?: string } };
}

/** Holds an exclusive lock on `table` (inserts wait) until release(). */
async function lockTable(db: Knex, table: string): Promise<{ release: () => Promise<void> }> {
  const trx = await db.transaction();
  await trx.raw(`lock table ${table} in exclusive mode`);
  return { release: async () => void (await trx.rollback()) };
}

const waitingInserts = (table: string) =>
  waitFor(
    async () => {
      const { rows } = await ctx.db.raw<{ rows: unknown[] }>(
        `select 1 from pg_locks l join pg_class c on c.oid = l.relation join pg_namespace n on n.oid = c.relnamespace
        where not l.granted and c.relname = ? and n.nspname = ?`,
        [table, ctx.schema],
      );
      return rows.length > 0 || undefined;
    },
    20_000,
    `an insert into ${table} waiting on the lock`,
  );

describe('group commit of webhooks', () => {
  test('40 concurrent ALLIO webhooks share statements, and each answer names the row stored for that request', async () => {
    const metrics = createMetrics();
    const { app, base } = await startApi({ metrics });
    try {
      const requestIds = Array.from({ length: 40 }, () => randomUUID());
      const answers = await Promise.all(
        requestIds.map((rid, k) =>
          postAllio(
            base,
            integration.webhookKey,
            { uuid: integration.uuid, command: 'RESERVE_ADD', indexes: [k + 1] },
            { 'x-request-id': rid },
          ),
        ),
      );
      expect(answers.map((a) => a.status)).toEqual(Array(40).fill(200));
      for (const [k, a] of answers.entries()) {
        const row = await ctx.db('allio_webhook').where({ id: a.body.id }).first();
        expect(row).toMatchObject({
          request_id: requestIds[k],
          external_ids_array: `[${k + 1}]`,
          integration_id: integration.id,
        });
      }
      const batches =
        (await metrics.webhookBatchRows.get()).values.find(
          (v) => v.metricName === 'hub_webhook_batch_rows_count',
        )?.value ?? 0;
      expect(batches).toBeGreaterThan(0);
      expect(batches).toBeLessThan(40);
    } finally {
      await app.close();
    }
  });

  test('with the write queue full a webhook is answered 503 intake_busy with Retry-After, stores nothing, and the queued ones still commit', async () => {
    const { app, base } = await startApi({
      intake: { INTAKE_BATCH_MAX: 1, INTAKE_WRITES_IN_FLIGHT: 1, INTAKE_QUEUE_MAX: 1 },
    });
    const lock = await lockTable(ctx.db, 'allio_webhook');
    try {
      const before = await count(ctx.db, 'allio_webhook');
      const send = (k: number) =>
        postAllio(base, integration.webhookKey, {
          uuid: integration.uuid,
          command: 'RESERVE_MOD',
          indexes: [k],
        });
      const first = send(1);
      await waitingInserts('allio_webhook');
      // One of these waits in the queue, the other finds it full.
      const [b, c] = [send(2), send(3)];
      const refused = await Promise.race([b, c]);
      expect(refused.status).toBe(503);
      expect(refused.body.error?.code).toBe('intake_busy');
      expect(refused.headers.get('retry-after')).toBe('1');
      await lock.release();
      const all = await Promise.all([first, b, c]);
      expect(all.map((a) => a.status).sort()).toEqual([200, 200, 503]);
      expect(await count(ctx.db, 'allio_webhook')).toBe(before + 2);
    } finally {
      await lock.release().catch(() => undefined);
      await app.close();
    }
  });

  test('a warehouse webhook-id twice in one batch is stored once: the first accepted, the second a duplicate', async () => {
    const write = writeWarehouseEvents(ctx.db);
    const row = (id: string) => ({
      webhook_id: id,
      type: 'stock.receipt',
      payload: { type: 'stock.receipt' },
      occurred_at: new Date().toISOString(),
    });
    const [a, b] = [`msg_${randomUUID()}`, `msg_${randomUUID()}`];
    expect(await write([row(a), row(b), row(a)])).toEqual(['accepted', 'accepted', 'duplicate']);
    expect(await write([row(b), row(a)])).toEqual(['duplicate', 'duplicate']);
    expect(await count(ctx.db, 'kitchen_warehouse_events', { webhook_id: a })).toBe(1);
  });

  test('10 concurrent deliveries of one warehouse webhook-id: one accepted, nine duplicates, one row', async () => {
    const { app, base } = await startApi();
    try {
      const id = `msg_${randomUUID()}`;
      const answers = await Promise.all(Array.from({ length: 10 }, () => postWarehouse(base, id)));
      expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
      expect(answers.filter((a) => a.body.status === 'accepted')).toHaveLength(1);
      expect(answers.filter((a) => a.body.status === 'duplicate')).toHaveLength(9);
      expect(await count(ctx.db, 'kitchen_warehouse_events', { webhook_id: id })).toBe(1);
    } finally {
      await app.close();
    }
  });
});

describe('integration cache', () => {
  let listener: WorkListener;
  let cache: IntegrationCache;
  let app: FastifyInstance;
  let base: string;
  let reads = 0;
  let notified = 0;
  const countReads = (q: { sql: string }) => {
    if (q.sql.includes(INTEGRATIONS)) reads++;
  };

  beforeAll(async () => {
    // Entries would live 10 minutes: only the notification can make a change show.
    cache = IntegrationCache.onDatabase(ctx.db, { ttlMs: 600_000, maxEntries: 100 });
    listener = new WorkListener(DATABASE_URL, ctx.schema, ctx.logger);
    listener.on(INTEGRATIONS, () => cache.invalidate());
    listener.on(INTEGRATIONS, () => notified++);
    await listener.start();
    ({ app, base } = await startApi({ cache }));
    ctx.db.on('query', countReads);
  });
  afterAll(async () => {
    ctx.db.off('query', countReads);
    await app.close();
    await listener.stop();
  });

  const resource = (
    it: TestIntegration,
    spec: Partial<{ webhookKey: string; active: boolean; integrationUuid: string }>,
  ) =>
    allioIntegrationResource.parse({
      apiVersion: API_VERSION,
      kind: 'AllioIntegration',
      metadata: { name: it.name },
      spec: {
        integrationUuid: it.uuid,
        webhookKey: it.webhookKey,
        apiBaseUrl: 'http://127.0.0.1:9',
        apiToken: 't',
        deletionControl: false,
        active: true,
        ...spec,
      },
    });

  test('repeated webhooks of one integration read it once', async () => {
    const seen = notified;
    const it = await addIntegration(ctx.db, { baseUrl: 'http://127.0.0.1:9' });
    // The insert's own notification empties the cache; wait for it, so that it cannot land later.
    await waitFor(() => notified > seen || undefined, 10_000, 'the new integration notified');
    const send = () =>
      postAllio(base, it.webhookKey, { uuid: it.uuid, command: 'RESERVE_ADD', indexes: [1] });
    const first = reads;
    expect((await send()).status).toBe(200);
    expect(reads).toBe(first + 1);
    const before = reads;
    for (let i = 0; i < 5; i++) expect((await send()).status).toBe(200);
    expect(reads).toBe(before);
  });

  test('an integration switched off is refused 403 promptly, and accepted again once switched on', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: 'http://127.0.0.1:9' });
    const send = () =>
      postAllio(base, it.webhookKey, { uuid: it.uuid, command: 'RESERVE_ADD', indexes: [1] });
    expect((await send()).status).toBe(200);
    await deactivateIntegration(ctx.db, it.name);
    await waitFor(
      async () => (await send()).status === 403 || undefined,
      10_000,
      'the switched-off integration refused',
    );
    await upsertIntegration(ctx.db, resource(it, { active: true }));
    await waitFor(
      async () => (await send()).status === 200 || undefined,
      10_000,
      'the switched-on integration accepted',
    );
  });

  test('a new webhook key takes effect promptly: the old URL is 404, the new one accepted', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: 'http://127.0.0.1:9' });
    const payload = { uuid: it.uuid, command: 'RESERVE_ADD', indexes: [1] };
    expect((await postAllio(base, it.webhookKey, payload)).status).toBe(200);
    const newKey = `wh_${randomUUID().replace(/-/g, '')}`;
    await upsertIntegration(ctx.db, resource(it, { webhookKey: newKey }));
    await waitFor(
      async () => (await postAllio(base, it.webhookKey, payload)).status === 404 || undefined,
      10_000,
      'the old key refused',
    );
    expect((await postAllio(base, newKey, payload)).status).toBe(200);
  });

  test('a deleted integration row is refused 404 promptly', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: 'http://127.0.0.1:9' });
    const payload = { uuid: it.uuid, command: 'RESERVE_ADD', indexes: [1] };
    expect((await postAllio(base, it.webhookKey, payload)).status).toBe(200);
    await ctx.db('allio_webhook').where({ integration_id: it.id }).delete();
    await ctx.db(INTEGRATIONS).where({ id: it.id }).delete();
    await waitFor(
      async () => (await postAllio(base, it.webhookKey, payload)).status === 404 || undefined,
      10_000,
      'the deleted integration refused',
    );
  });
});
