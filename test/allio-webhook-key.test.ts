// The ALLIO webhook key as a stored secret, against real PostgreSQL: only its hash is kept (also
// for rows written before the hash existed), lookups go by hash, and keys up to the documented
// 128 characters reach the route.
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../services/api/app.js';
import { createDb } from '../services/core/db.js';
import { migrate } from '../services/core/migrate.js';
import { migrations } from '../services/core/migrations/index.js';
import { uncachedLookup } from '../services/domains/allio/integration-cache.js';
import { hashWebhookKey } from '../services/domains/allio/webhook-key.js';
import {
  createTestContext,
  DATABASE_URL,
  uniqueName,
  type TestContext,
} from './support/context.js';
import { addIntegration, count } from './support/allio.js';

let ctx: TestContext;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  ctx = await createTestContext('webhookkey');
  app = buildApi({ db: ctx.db, logger: ctx.logger, metrics: ctx.metrics, readiness: [] });
  base = await app.listen({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  await app.close();
  await ctx.close();
});

/** A key of exactly `length` characters from the allowed alphabet. */
function keyOf(length: number): string {
  return randomBytes(length).toString('base64url').slice(0, length);
}

async function post(key: string, uuid: string) {
  const res = await fetch(`${base}/webhooks/allio/${key}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ uuid, command: 'RESERVE_ADD', indexes: [1] }),
  });
  return { status: res.status, body: (await res.json()) as { error?: { code: string } } };
}

describe('allio webhook key storage', () => {
  test('an applied integration keeps only the SHA-256 of its webhook key, and no column holds the key', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: 'https://allio.example' });
    const row = (await ctx.db('allio_integrations').where({ id: it.id }).first()) as Record<
      string,
      unknown
    >;
    expect(row.webhook_key_hash).toBe(hashWebhookKey(it.webhookKey));
    expect(row).not.toHaveProperty('webhook_key');
    expect(JSON.stringify(row)).not.toContain(it.webhookKey);
  });

  test('the webhook is found by the hash of the key in its URL', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: 'https://allio.example' });
    expect((await uncachedLookup(ctx.db).findByWebhookKey(it.webhookKey))?.id).toBe(it.id);
    expect(
      await uncachedLookup(ctx.db).findByWebhookKey(hashWebhookKey(it.webhookKey)),
    ).toBeUndefined();
    expect((await post(it.webhookKey, it.uuid)).status).toBe(200);
  });

  test('a 128-character key, the documented maximum, is accepted and its webhook stored', async () => {
    const it = await addIntegration(ctx.db, {
      baseUrl: 'https://allio.example',
      webhookKey: keyOf(128),
    });
    const before = await count(ctx.db, 'allio_webhook', { integration_id: it.id });
    const res = await post(it.webhookKey, it.uuid);
    expect(res.status).toBe(200);
    expect(await count(ctx.db, 'allio_webhook', { integration_id: it.id })).toBe(before + 1);
  });

  test.each([101, 127])('a %i-character key is accepted', async (length) => {
    const it = await addIntegration(ctx.db, {
      baseUrl: 'https://allio.example',
      webhookKey: keyOf(length),
    });
    expect((await post(it.webhookKey, it.uuid)).status).toBe(200);
  });

  test('a 129-character key is answered with a small 404 and stores nothing', async () => {
    const before = await count(ctx.db, 'allio_webhook');
    const res = await fetch(`${base}/webhooks/allio/${keyOf(129)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ uuid: randomUUID(), command: 'RESERVE_ADD', indexes: [1] }),
    });
    const text = await res.text();
    expect(res.status).toBe(404);
    expect(text.length).toBeLessThan(400);
    expect(JSON.parse(text)).toMatchObject({ error: { code: 'integration_not_found' } });
    expect(await count(ctx.db, 'allio_webhook')).toBe(before);
  });

  test('migration 7 hashes a key stored in plain text before it, which is then found by its hash', async () => {
    const schema = uniqueName('t_whmig');
    const db = createDb({ DATABASE_URL, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: 2 });
    try {
      await migrate(
        db,
        schema,
        migrations.filter((m) => m.id <= 6),
      );
      const key = keyOf(40);
      await db('allio_integrations').insert({
        name: 'legacy',
        integration_uuid: randomUUID(),
        webhook_key: key,
        api_base_url: 'https://allio.example',
        api_token: 't',
      });
      const r = await migrate(db, schema);
      expect(r.applied).toContain('000007_webhook_key_hash');
      const { rows } = await db.raw(
        `select column_name from information_schema.columns where table_schema = ? and table_name = 'allio_integrations'`,
        [schema],
      );
      expect(rows.map((c: { column_name: string }) => c.column_name)).not.toContain('webhook_key');
      expect((await uncachedLookup(db).findByWebhookKey(key))?.name).toBe('legacy');
    } finally {
      await db.raw(`drop schema if exists "${schema}" cascade`);
      await db.destroy();
    }
  });
});
