// ALLIO webhook intake limits against real PostgreSQL and Redis: per integration, shared by every
// api replica, 429 with Retry-After beyond the webhooks, ids and deleted-ids budgets, nothing
// stored for a refused webhook, and intake left open (counted, logged once) while Redis is down.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { buildApi } from '../services/api/app.js';
import { AllioIntakeLimiter } from '../services/api/allio-intake.js';
import { allioIntakeEnv } from '../services/api/config.js';
import { loadConfig } from '../services/core/config.js';
import { createLogger } from '../services/core/logger.js';
import { createMetrics, type Metrics } from '../services/core/metrics.js';
import { freePort } from '../services/core/net.js';
import { createRedis } from '../services/core/redis.js';
import { createTestContext, REDIS_URL, type TestContext } from './support/context.js';
import { addIntegration, count, type TestIntegration } from './support/allio.js';

let ctx: TestContext;
const apps: FastifyInstance[] = [];
const clients: Redis[] = [];

beforeAll(async () => {
  ctx = await createTestContext('intake');
});
afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  for (const c of clients) c.disconnect();
  await ctx.close();
});

interface Api {
  base: string;
  metrics: Metrics;
  lines: string[];
}

/** One api replica with its own Redis connection and the given limits. */
async function startApi(limits: Record<string, string>, redisUrl = REDIS_URL): Promise<Api> {
  const redis = createRedis({ REDIS_URL: redisUrl, REDIS_KEY_PREFIX: ctx.keyPrefix });
  redis.on('error', () => undefined);
  clients.push(redis);
  const lines: string[] = [];
  const logger = createLogger(
    { level: 'info', name: 'api' },
    { write: (line: string) => void lines.push(line) },
  );
  const metrics = createMetrics();
  // Without an offline queue a command sent before the connection is up fails (and is let through).
  if (redisUrl === REDIS_URL) await new Promise((resolve) => redis.once('ready', resolve));
  // A generous timeout: on a loaded test machine a slow answer would otherwise count as Redis down.
  const allioIntake = new AllioIntakeLimiter(
    redis,
    ctx.keyPrefix,
    loadConfig(allioIntakeEnv, limits),
    metrics,
    logger,
    5_000,
  );
  const app = buildApi({ db: ctx.db, logger, metrics, readiness: [], allioIntake });
  apps.push(app);
  return { base: await app.listen({ port: 0, host: '127.0.0.1' }), metrics, lines };
}

const ids = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);

async function send(api: Api, it: TestIntegration, command: string, indexes: number[]) {
  const res = await fetch(`${api.base}/webhooks/allio/${it.webhookKey}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ uuid: it.uuid, command, indexes }),
  });
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    body: (await res.json()) as { error?: { code: string } },
  };
}

const stored = (it: TestIntegration) => count(ctx.db, 'allio_webhook', { integration_id: it.id });

describe('allio webhook intake limits', () => {
  test('webhooks beyond the per-minute rate get 429 with Retry-After, store nothing, and are counted', async () => {
    const api = await startApi({ ALLIO_WEBHOOKS_PER_MINUTE: '3' });
    const it = await addIntegration(ctx.db, { baseUrl: 'https://allio.example' });
    for (let i = 0; i < 3; i++) {
      expect((await send(api, it, 'RESERVE_ADD', [i + 1])).status).toBe(200);
    }
    const refused = await send(api, it, 'RESERVE_ADD', [9]);
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ error: { code: 'rate_limited' } });
    // One webhook every 20 s refills a 3-per-minute budget.
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(20);
    expect(await stored(it)).toBe(3);
    const metrics = await api.metrics.registry.metrics();
    expect(metrics).toMatch(
      /hub_webhooks_received_total\{source="allio",result="rate_limited"\} 1/,
    );
  });

  test('the budget is per integration: another integration is not refused', async () => {
    const api = await startApi({ ALLIO_WEBHOOKS_PER_MINUTE: '1' });
    const a = await addIntegration(ctx.db, { baseUrl: 'https://allio.example' });
    const b = await addIntegration(ctx.db, { baseUrl: 'https://allio.example' });
    expect((await send(api, a, 'RESERVE_ADD', [1])).status).toBe(200);
    expect((await send(api, a, 'RESERVE_ADD', [1])).status).toBe(429);
    expect((await send(api, b, 'RESERVE_ADD', [1])).status).toBe(200);
  });

  test('replicas share one budget through Redis', async () => {
    const limits = { ALLIO_WEBHOOKS_PER_MINUTE: '3' };
    const [one, two] = [await startApi(limits), await startApi(limits)];
    const it = await addIntegration(ctx.db, { baseUrl: 'https://allio.example' });
    expect((await send(one, it, 'DEALCARD_MOD', [1])).status).toBe(200);
    expect((await send(two, it, 'DEALCARD_MOD', [2])).status).toBe(200);
    expect((await send(one, it, 'DEALCARD_MOD', [3])).status).toBe(200);
    expect((await send(two, it, 'DEALCARD_MOD', [4])).status).toBe(429);
    expect(await stored(it)).toBe(3);
  });

  test('ids beyond the per-minute id budget get 429; a refused webhook uses none of the budget', async () => {
    const api = await startApi({ ALLIO_WEBHOOK_IDS_PER_MINUTE: '10000' });
    const it = await addIntegration(ctx.db, { baseUrl: 'https://allio.example' });
    expect((await send(api, it, 'RESERVE_ADD', ids(6_000))).status).toBe(200);
    const refused = await send(api, it, 'RESERVE_ADD', ids(6_000));
    expect(refused.status).toBe(429);
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(await stored(it)).toBe(1);
    // 6,000 of 10,000 used: 3,000 more still fit, because the refused 6,000 were not charged.
    expect((await send(api, it, 'RESERVE_ADD', ids(3_000))).status).toBe(200);
  });

  test('deleted ids have their own stricter budget, leaving other commands their own', async () => {
    const api = await startApi({ ALLIO_WEBHOOK_DELETE_IDS_PER_MINUTE: '10000' });
    const it = await addIntegration(ctx.db, { baseUrl: 'https://allio.example' });
    expect((await send(api, it, 'RESERVE_DEL', ids(10_000))).status).toBe(200);
    // 5,000 ids take 30 s to refill at 10,000 a minute: far longer than this test runs.
    const refused = await send(api, it, 'DEALCARD_DEL', ids(5_000));
    expect(refused.status).toBe(429);
    expect(
      await count(ctx.db, 'allio_webhook', { integration_id: it.id, command: 'DEALCARD_DEL' }),
    ).toBe(0);
    expect((await send(api, it, 'RESERVE_ADD', ids(10_000))).status).toBe(200);
  });

  test('with Redis unreachable intake stays open: webhooks are stored, counted as unchecked, and logged once', async () => {
    const closedPort = await freePort();
    const api = await startApi(
      { ALLIO_WEBHOOKS_PER_MINUTE: '1' },
      `redis://127.0.0.1:${closedPort}`,
    );
    const it = await addIntegration(ctx.db, { baseUrl: 'https://allio.example' });
    for (let i = 0; i < 3; i++) {
      expect((await send(api, it, 'RESERVE_ADD', [i + 1])).status).toBe(200);
    }
    expect(await stored(it)).toBe(3);
    const metrics = await api.metrics.registry.metrics();
    expect(metrics).toMatch(/hub_webhook_limit_unchecked_total\{source="allio"\} 3/);
    const warnings = api.lines.filter((l) => l.includes('webhook intake limiter unavailable'));
    expect(warnings).toHaveLength(1);
  });
});
