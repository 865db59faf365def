// The shared kernel on the real servers: concurrent migrations, LISTEN/NOTIFY wake-ups, claims
// under contention, the rate limiter's spacing, and the readiness probe.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Redis } from 'ioredis';
import { createDb } from '../services/core/db.js';
import { migrate } from '../services/core/migrate.js';
import { migrations } from '../services/core/migrations/index.js';
import { WorkListener } from '../services/core/engine/notify.js';
import { Reconciler } from '../services/core/engine/reconciler.js';
import { WorkTable, type WorkRow } from '../services/core/engine/work-table.js';
import { RateLimiter } from '../services/core/ratelimit/limiter.js';
import { createHttpServer } from '../services/core/http.js';
import { pingRedis } from '../services/core/redis.js';
import { pingDb } from '../services/core/db.js';
import { createTestContext, DATABASE_URL, REDIS_URL, uniqueName, waitFor, type TestContext } from './support/context.js';
import { track } from './support/leaks.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext('engine');
});
afterAll(async () => {
  await ctx.close();
});

describe('migrations', () => {
  test('two pods migrating a fresh schema at once apply each migration exactly once', async () => {
    const schema = uniqueName('t_mig');
    const a = createDb({ DATABASE_URL, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: 2 });
    const b = createDb({ DATABASE_URL, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: 2 });
    try {
      const [ra, rb] = await Promise.all([migrate(a, schema), migrate(b, schema)]);
      expect(ra.applied.length + rb.applied.length).toBe(migrations.length);
      expect(ra.alreadyApplied + rb.alreadyApplied).toBe(migrations.length);
      const { rows } = await a.raw(`select id from "${schema}".hub_migrations order by id`);
      expect(rows.map((r: { id: number }) => r.id)).toEqual(migrations.map((m) => m.id));
      expect((await migrate(a, schema)).applied).toEqual([]);
    } finally {
      await a.raw(`drop schema if exists "${schema}" cascade`);
      await Promise.all([a.destroy(), b.destroy()]);
    }
  });
});

describe('reconcile engine', () => {
  const table = () =>
    new WorkTable(ctx.db, ctx.metrics, ctx.logger, { table: 'periodic_runs', reconciler: 'test', leaseMs: 30_000, maxAttempts: 3 });

  test('NOTIFY wakes an idle reconciler at once instead of waiting for its poll', async () => {
    const t = table();
    const handled: string[] = [];
    const filter = { sql: 'name = ?', bindings: ['notify-test'] };
    const r = new Reconciler<WorkRow>({
      name: 'notify-test', owner: 'me', logger: ctx.logger, metrics: ctx.metrics,
      pollMinMs: 60_000, pollMaxMs: 60_000,
      claim: (owner) => t.claim(owner, 10, filter),
      handle: async (batch, owner) => {
        handled.push(...batch.map((b) => b.id));
        await t.complete(batch.map((b) => b.id), owner);
      },
    });
    const listener = new WorkListener(DATABASE_URL, ctx.schema, ctx.logger);
    listener.on('periodic_runs', () => r.notify());
    await listener.start();
    const untrack = track('reconciler');
    r.start();
    try {
      // Let the first (empty) claim happen so the loop is asleep for its 60 s poll.
      await new Promise((res) => setTimeout(res, 200));
      const t0 = Date.now();
      await ctx.db('periodic_runs').insert({ name: 'notify-test', period_key: 'p1' });
      await waitFor(() => handled.length === 1, 5_000, 'the notified reconciler');
      expect(Date.now() - t0).toBeLessThan(2_000);
    } finally {
      await r.stop();
      await listener.stop();
      untrack();
    }
    expect(r.state).toBe('stopped');
  });

  test('concurrent claimers never get the same row (SKIP LOCKED)', async () => {
    const t = table();
    await ctx.db('periodic_runs').insert(Array.from({ length: 200 }, (_, i) => ({ name: 'claim-test', period_key: `k${i}` })));
    const filter = { sql: 'name = ?', bindings: ['claim-test'] };
    const other = ctx.newDb();
    const t2 = new WorkTable(other, ctx.metrics, ctx.logger, t.options);
    const claimed: string[] = [];
    await Promise.all(
      [t, t2, t, t2].map(async (w, i) => {
        for (;;) {
          const rows = await w.claim(`owner-${i}`, 7, filter);
          if (rows.length === 0) return;
          claimed.push(...rows.map((r) => r.id));
        }
      }),
    );
    expect(claimed).toHaveLength(200);
    expect(new Set(claimed).size).toBe(200);
  });

  test('a retryable error schedules a retry with backoff; exhausting the attempts fails it and keeps it', async () => {
    const t = table();
    await ctx.db('periodic_runs').insert({ name: 'retry-test', period_key: 'r' });
    const filter = { sql: 'name = ?', bindings: ['retry-test'] };
    const [row] = await t.claim('me', 1, filter);
    if (!row) throw new Error('no row claimed');
    const [outcome] = await t.settleError([row], 'me', Object.assign(new Error('boom'), { code: 'ECONNRESET' }));
    expect(outcome).toMatchObject({ kind: 'retry', reason: 'connection' });
    const scheduled = await ctx.db('periodic_runs').where({ id: row.id }).first();
    expect(scheduled.status).toBe(0);
    expect(scheduled.next_attempt_at.getTime()).toBeGreaterThan(Date.now() + 400);
    await ctx.db('periodic_runs').where({ id: row.id }).update({ next_attempt_at: ctx.db.fn.now(), attempts: 3 });
    const [again] = await t.claim('me', 1, filter);
    // attempts is now 4 > maxAttempts 3: the claim itself fails it as exhausted.
    expect(again).toBeUndefined();
    const failed = await ctx.db('periodic_runs').where({ id: row.id }).first();
    expect(failed.status).toBe(3);
    expect(failed.last_error).toMatch(/lease expired/);
  });
});

describe('rate limiter', () => {
  test('callers on two connections are spaced by the emission interval (Redis TIME, one key)', async () => {
    const other = new Redis(REDIS_URL);
    try {
      const a = new RateLimiter(ctx.redis, ctx.keyPrefix, ctx.metrics, ctx.logger);
      const b = new RateLimiter(other, ctx.keyPrefix, ctx.metrics, ctx.logger);
      const times: number[] = [];
      await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          (i % 2 ? a : b).acquire('p', 'ip', { ratePerSecond: 10 }).then(() => times.push(performance.now())),
        ),
      );
      times.sort((x, y) => x - y);
      const first = times[0] ?? 0;
      const last = times[times.length - 1] ?? 0;
      // Six slots at 100 ms apart: the last is granted about 500 ms after the first.
      expect(last - first).toBeGreaterThanOrEqual(480);
      expect(last - first).toBeLessThan(900);
      expect(await ctx.redis.exists(`${ctx.keyPrefix}ratelimit:p:ip`)).toBe(1);
    } finally {
      other.disconnect();
    }
  });
});

describe('http scaffold', () => {
  test('/readyz answers 503 naming the dependency that is down, /healthz stays 200', async () => {
    const dead = new Redis('redis://127.0.0.1:1', { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 200 });
    dead.on('error', () => undefined);
    const app = createHttpServer({
      logger: ctx.logger, metrics: ctx.metrics,
      readiness: [
        { name: 'postgres', check: () => pingDb(ctx.db) },
        { name: 'redis', check: () => pingRedis(dead) },
      ],
    });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({
        status: 'not_ready',
        checks: [{ name: 'postgres', ok: true }, { name: 'redis', ok: false }],
      });
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const metrics = await fetch(`${base}/metrics`);
      expect(metrics.headers.get('content-type')).toContain('text/plain');
      expect(await metrics.text()).toContain('# TYPE hub_reconcile_attempts_total counter');
    } finally {
      await app.close();
      dead.disconnect();
    }
  });
});
