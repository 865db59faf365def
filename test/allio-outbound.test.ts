// allio-sync against a partner that misbehaves: absurd Retry-After, plain HTTP, foreign hosts,
// redirects, endless bodies and a token Secret that belongs to another integration.
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { createMetrics } from '../services/core/metrics.js';
import type { AllioSync } from '../services/allio-sync/service.js';
import { createTestContext, waitFor, type TestContext } from './support/context.js';
import { addIntegration, startSync, type TestIntegration } from './support/allio.js';
import {
  answer,
  hugeBody,
  startPartnerServer,
  type PartnerServer,
} from './support/partner-server.js';

let ctx: TestContext;
let partner: PartnerServer;
let elsewhere: PartnerServer;
const running: AllioSync[] = [];
let egress = 0;

/** Each test its own limiter key, so one test's pause never holds the next one. */
function sync(o: Parameters<typeof startSync>[1] = {}) {
  return startSync(ctx, { ...o, env: { EGRESS_IP: `egress-${++egress}`, ...o.env } });
}

beforeAll(async () => {
  ctx = await createTestContext('outbound');
});
beforeEach(async () => {
  partner = await startPartnerServer();
  elsewhere = await startPartnerServer();
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop(2_000)));
  await partner.close();
  await elsewhere.close();
});
afterAll(async () => {
  await ctx.close();
});

async function webhook(it: TestIntegration, ids: number[]) {
  await ctx.db('allio_webhook').insert({
    integration_id: it.id,
    integration_uuid: it.uuid,
    command: 'RESERVE_ADD',
    external_ids_array: JSON.stringify(ids),
  });
}

/** The integration's task once it has been tried (retry scheduled, done or failed). */
function triedTask(it: TestIntegration, timeoutMs = 10_000) {
  return waitFor(
    async () => {
      const t = await ctx.db('allio_tasks').where({ integration_id: it.id }).first();
      return t && t.status !== 1 && t.attempts > 0 ? t : undefined;
    },
    timeoutMs,
    'the task to be tried',
  );
}

describe('allio-sync outbound policy', () => {
  test('a 429 with Retry-After 99999999 pauses the shared limiter and the task for at most RETRY_AFTER_MAX_MS, and is counted', async () => {
    partner.handle(answer(429, { error: 'slow down' }, { 'retry-after': '99999999' }));
    const it = await addIntegration(ctx.db, { baseUrl: partner.url });
    const metrics = createMetrics();
    running.push(await sync({ metrics, env: { EGRESS_IP: 'absurd', RETRY_AFTER_MAX_MS: '5000' } }));
    await webhook(it, [1]);
    const task = await triedTask(it);
    const [[sec, micro]] = [await ctx.redis.time()] as unknown as [[string, string]];
    const redisNow = Number(sec) * 1000 + Number(micro) / 1000;
    const resumeAt = Number(await ctx.redis.get(`${ctx.keyPrefix}ratelimit:allio:absurd:pause`));
    expect(resumeAt - redisNow).toBeLessThanOrEqual(5_000);
    expect(task.status).toBe(0);
    expect(new Date(task.next_attempt_at).getTime() - Date.now()).toBeLessThanOrEqual(5_000);
    const clamped = await metrics.registry.getSingleMetricAsString('hub_retry_after_clamped_total');
    expect(clamped).toMatch(/hub_retry_after_clamped_total\{partner="allio"\} 1/);
  });

  test('an http base URL is refused without OUTBOUND_ALLOW_HTTP: the task fails with the reason and nothing is sent', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: partner.url });
    running.push(await sync({ env: { OUTBOUND_ALLOW_HTTP: 'false' } }));
    await webhook(it, [1]);
    const task = await triedTask(it);
    expect(task.status).toBe(3);
    expect(task.last_error).toMatch(/outbound_scheme/);
    expect(partner.requests).toEqual([]);
  });

  test('a host outside OUTBOUND_ALLOWED_HOSTS is refused: the task fails with the reason and nothing is sent', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: partner.url });
    running.push(
      await sync({ env: { OUTBOUND_ALLOWED_HOSTS: 'api.allio.example,*.allio.example' } }),
    );
    await webhook(it, [1]);
    const task = await triedTask(it);
    expect(task.status).toBe(3);
    expect(task.last_error).toMatch(/outbound_host.*127\.0\.0\.1/);
    expect(partner.requests).toEqual([]);
  });

  test('a redirect is not followed: the other server receives nothing (no token) and the task fails as a redirect', async () => {
    partner.handle(answer(307, {}, { location: `${elsewhere.url}/reserve/list` }));
    const it = await addIntegration(ctx.db, { baseUrl: partner.url, token: 'secret-bearer-token' });
    running.push(await sync());
    await webhook(it, [1]);
    const task = await triedTask(it);
    expect(partner.requests).toHaveLength(1);
    expect(elsewhere.requests).toEqual([]);
    expect(task.status).toBe(3);
    expect(task.last_error).toMatch(/outbound_redirect/);
    expect(task.last_error).not.toContain(elsewhere.url);
  });

  test('a 50 MB answer is cut off at OUTBOUND_MAX_RESPONSE_BYTES and the heap stays bounded', async () => {
    partner.handle(hugeBody(50 * 1024 * 1024));
    const it = await addIntegration(ctx.db, { baseUrl: partner.url });
    running.push(await sync({ env: { OUTBOUND_MAX_RESPONSE_BYTES: String(1024 * 1024) } }));
    global.gc?.();
    const baseline = process.memoryUsage().heapUsed;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().heapUsed);
    }, 5);
    try {
      await webhook(it, [1]);
      const task = await triedTask(it, 20_000);
      expect(task.status).toBe(3);
      expect(task.last_error).toMatch(/outbound_response_too_large/);
    } finally {
      clearInterval(sampler);
    }
    // The socket and kernel buffers hold a few MiB at most; reading the whole answer would be 50+.
    expect(partner.bytesSent).toBeLessThan(12 * 1024 * 1024);
    expect(peak - baseline).toBeLessThan(40 * 1024 * 1024);
  });

  test("an integration whose Secret reference names another integration's Secret is refused and sends no request", async () => {
    const secrets = await mkdtemp(path.join(tmpdir(), 'hub-secrets-'));
    const victim = await addIntegration(ctx.db, { baseUrl: partner.url });
    const thief = await addIntegration(ctx.db, { baseUrl: partner.url });
    await mkdir(path.join(secrets, `allio-${victim.name}`));
    await writeFile(path.join(secrets, `allio-${victim.name}`, 'token'), 'victim-token\n');
    await ctx
      .db('allio_integrations')
      .where({ id: thief.id })
      .update({
        api_token: null,
        api_token_secret_name: `allio-${victim.name}`,
        api_token_secret_key: 'token',
      });
    running.push(await sync({ env: { SECRETS_DIR: secrets } }));
    await webhook(thief, [1]);
    const task = await triedTask(thief);
    expect(task.status).toBe(3);
    expect(task.last_error).toContain(
      `Secret allio-${victim.name} is not bound to integration ${thief.name}`,
    );
    expect(partner.requests).toEqual([]);
  });
});
