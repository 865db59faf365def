// The shared kernel on the real servers: concurrent migrations, LISTEN/NOTIFY wake-ups, claims
// under contention, per-row handling and its shutdown, the rate limiter's spacing, and the
// readiness probe.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Redis } from 'ioredis';
import { createDb } from '../services/core/db.js';
import { migrate } from '../services/core/migrate.js';
import { migrations } from '../services/core/migrations/index.js';
import { WorkListener } from '../services/core/engine/notify.js';
import { perRow } from '../services/core/engine/per-row.js';
import { Reconciler } from '../services/core/engine/reconciler.js';
import { defineWorkReconciler } from '../services/core/engine/work-reconciler.js';
import { WorkTable, type WorkRow } from '../services/core/engine/work-table.js';
import { RateLimiter } from '../services/core/ratelimit/limiter.js';
import { createHttpServer } from '../services/core/http.js';
import { pingRedis } from '../services/core/redis.js';
import { pingDb } from '../services/core/db.js';
import {
  createTestContext,
  DATABASE_URL,
  REDIS_URL,
  uniqueName,
  waitFor,
  type TestContext,
} from './support/context.js';
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
    new WorkTable(ctx.db, ctx.metrics, ctx.logger, {
      table: 'periodic_runs',
      reconciler: 'test',
      leaseMs: 30_000,
      maxAttempts: 3,
    });

  test('NOTIFY wakes an idle reconciler at once instead of waiting for its poll', async () => {
    const t = table();
    const handled: string[] = [];
    const filter = { sql: 'name = ?', bindings: ['notify-test'] };
    const r = new Reconciler<WorkRow>({
      name: 'notify-test',
      owner: 'me',
      logger: ctx.logger,
      metrics: ctx.metrics,
      pollMinMs: 60_000,
      pollMaxMs: 60_000,
      claim: (owner) => t.claim(owner, 10, filter),
      handle: async (batch, owner) => {
        handled.push(...batch.map((b) => b.id));
        await t.complete(
          batch.map((b) => b.id),
          owner,
        );
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
    await ctx
      .db('periodic_runs')
      .insert(Array.from({ length: 200 }, (_, i) => ({ name: 'claim-test', period_key: `k${i}` })));
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
    const [outcome] = await t.settleError(
      [row],
      'me',
      Object.assign(new Error('boom'), { code: 'ECONNRESET' }),
    );
    expect(outcome).toMatchObject({ kind: 'retry', reason: 'connection' });
    const scheduled = await ctx.db('periodic_runs').where({ id: row.id }).first();
    expect(scheduled.status).toBe(0);
    expect(scheduled.next_attempt_at.getTime()).toBeGreaterThan(Date.now() + 400);
    // Backing off, it is not due (no backlog) but counts as retrying: what HubBacklogStuck watches
    // while a partner is down.
    expect(await t.stats(filter)).toEqual({ backlog: 0, oldestDueAgeSeconds: 0, retrying: 1 });
    await ctx
      .db('periodic_runs')
      .where({ id: row.id })
      .update({ next_attempt_at: ctx.db.fn.now(), attempts: 3 });
    const [again] = await t.claim('me', 1, filter);
    // attempts is now 4 > maxAttempts 3: the claim itself fails it as exhausted.
    expect(again).toBeUndefined();
    const failed = await ctx.db('periodic_runs').where({ id: row.id }).first();
    expect(failed.status).toBe(3);
    expect(failed.last_error).toMatch(/lease expired/);
  });

  test('complete reaches rows whose text ids hold commas, quotes, backslashes and braces (ids bound as one array)', async () => {
    const name = uniqueName('text_ids');
    await ctx.db.raw(
      `create table ?? (
      id text primary key, status smallint not null default 0, attempts int not null default 0,
      next_attempt_at timestamptz not null default now(), locked_by text, locked_until timestamptz,
      last_error text, updated_at timestamptz not null default now())`,
      [name],
    );
    try {
      const ids = ['a,b', 'q"uote', 'back\\slash', '{brace}', 'NULL', ' spaced '];
      await ctx.db(name).insert(ids.map((id) => ({ id })));
      const t = new WorkTable(ctx.db, ctx.metrics, ctx.logger, {
        table: name,
        reconciler: 'test',
        leaseMs: 30_000,
        maxAttempts: 3,
      });
      const claimed = await t.claim('me', 10);
      expect(claimed.map((r) => r.id).sort()).toEqual([...ids].sort());
      expect((await t.complete(ids, 'me')).sort()).toEqual([...ids].sort());
      const rows: { id: string; status: number }[] = await ctx.db(name).select('id', 'status');
      expect(rows.every((r) => r.status === 2)).toBe(true);
    } finally {
      await ctx.db.raw('drop table if exists ??', [name]);
    }
  });
});

describe('work reconciler', () => {
  test("rows are handled one by one, a row's error is settled alone, and a shutdown out of patience hands back the rows not yet started", async () => {
    const name = 'per-row-test';
    await ctx
      .db('periodic_runs')
      .insert(['a', 'b', 'c', 'd'].map((k) => ({ name, period_key: k })));
    const ids = (await ctx.db('periodic_runs').where({ name }).orderBy('id').select('id')).map(
      (r: { id: string }) => String(r.id),
    );
    const order: string[] = [];
    let holding = false;
    const { reconciler, table } = defineWorkReconciler<WorkRow>({
      db: ctx.db,
      logger: ctx.logger,
      metrics: ctx.metrics,
      owner: 'me',
      table: 'periodic_runs',
      name,
      leaseMs: 30_000,
      maxAttempts: 3,
      batch: 10,
      filter: { sql: 'name = ?', bindings: [name] },
      pollMinMs: 50,
      pollMaxMs: 100,
      handle: (t) =>
        perRow<WorkRow>(t, ctx.logger, {
          warning: 'step did not complete',
          async handle(row, owner, signal) {
            order.push(String(row.id));
            if (order.length === 1) {
              throw Object.assign(new Error('partner away'), { code: 'ECONNRESET' });
            }
            // The second row is still in hand when the shutdown runs out of patience; it finishes.
            holding = true;
            await new Promise<void>((resolve) =>
              signal.addEventListener('abort', () => resolve(), { once: true }),
            );
            await t.complete([row.id], owner);
          },
        }),
    });
    expect(table.options).toMatchObject({
      table: 'periodic_runs',
      reconciler: name,
      leaseMs: 30_000,
      maxAttempts: 3,
    });
    const untrack = track('reconciler');
    reconciler.start();
    try {
      await waitFor(() => holding, 5_000, 'the second row in hand');
      await reconciler.stop(200);
    } finally {
      await reconciler.stop();
      untrack();
    }
    const rows = await ctx.db('periodic_runs').where({ name }).orderBy('id');
    const byId = new Map(rows.map((r: WorkRow) => [String(r.id), r]));
    const [first, second] = order;
    expect(order).toHaveLength(2);
    expect(byId.get(first ?? '')).toMatchObject({
      status: 0,
      attempts: 1,
      last_error: expect.stringContaining('partner away'),
    });
    expect(byId.get(second ?? '')).toMatchObject({ status: 2, attempts: 1 });
    const untouched = ids.filter((id) => id !== first && id !== second).map((id) => byId.get(id));
    expect(untouched).toEqual(
      Array.from({ length: 2 }, () =>
        expect.objectContaining({ status: 0, attempts: 0, locked_by: null }),
      ),
    );
  });
});

describe('leases', () => {
  const table = (leaseMs: number) =>
    new WorkTable(ctx.db, ctx.metrics, ctx.logger, {
      table: 'periodic_runs',
      reconciler: 'lease-test',
      leaseMs,
      maxAttempts: 3,
    });
  const lost = async () =>
    (await ctx.metrics.leaseLost.get()).values.find((v) => v.labels.reconciler === 'lease-test')
      ?.value ?? 0;

  test('a holder whose lease lapsed completes nothing, even when no one took the row, and the loss is counted once', async () => {
    const t = table(30_000);
    await ctx.db('periodic_runs').insert({ name: 'fence-test', period_key: 'f' });
    const [row] = await t.claim('stale', 1, { sql: 'name = ?', bindings: ['fence-test'] });
    if (!row) throw new Error('no row claimed');
    const before = await lost();
    await ctx
      .db('periodic_runs')
      .where({ id: row.id })
      .update({ locked_until: ctx.db.raw(`now() - interval '1 second'`) });
    expect(await t.extend([row.id], 'stale')).toEqual([]);
    expect(await t.complete([row.id], 'stale')).toEqual([]);
    await t.fail([row.id], 'stale', 'late');
    expect(await ctx.db('periodic_runs').where({ id: row.id }).first()).toMatchObject({
      status: 1,
      locked_by: 'stale',
    });
    expect((await lost()) - before).toBe(1);
  });

  test('a reconciler renews the leases of a batch that takes three leases to handle; no other claimer gets it', async () => {
    const t = table(600);
    await ctx.db('periodic_runs').insert({ name: 'renew-test', period_key: 'r' });
    const filter = { sql: 'name = ?', bindings: ['renew-test'] };
    const stolen: string[] = [];
    const r = new Reconciler<WorkRow>({
      name: 'renew-test',
      owner: 'slow',
      logger: ctx.logger,
      metrics: ctx.metrics,
      pollMinMs: 50,
      pollMaxMs: 100,
      claim: (owner) => t.claim(owner, 1, filter),
      handle: async (batch, owner) => {
        await new Promise((res) => setTimeout(res, 1_800));
        await t.complete(
          batch.map((b) => b.id),
          owner,
        );
      },
      lease: t.renewal(),
    });
    const untrack = track('reconciler');
    r.start();
    try {
      await waitFor(
        async () =>
          (await ctx.db('periodic_runs').where({ name: 'renew-test', status: 1 })).length === 1,
        5_000,
      );
      const deadline = Date.now() + 1_500;
      while (Date.now() < deadline) {
        stolen.push(...(await t.claim('thief', 1, filter)).map((x) => x.id));
        await new Promise((res) => setTimeout(res, 100));
      }
      await waitFor(
        async () =>
          (await ctx.db('periodic_runs').where({ name: 'renew-test', status: 2 })).length === 1,
        5_000,
      );
    } finally {
      await r.stop();
      untrack();
    }
    expect(stolen).toEqual([]);
    expect(await ctx.db('periodic_runs').where({ name: 'renew-test' }).first()).toMatchObject({
      status: 2,
      attempts: 1,
    });
  });
});

describe('rate limiter', () => {
  const spec = { perWindow: 2, windowMs: 200, sendWithinMs: 100, answerWithinMs: 400 };

  test('callers on two connections share one window: two per window, each window counted from the answer (Redis TIME, one key)', async () => {
    const other = new Redis(REDIS_URL);
    try {
      const a = new RateLimiter(ctx.redis, ctx.keyPrefix, ctx.metrics, ctx.logger);
      const b = new RateLimiter(other, ctx.keyPrefix, ctx.metrics, ctx.logger);
      const times: number[] = [];
      await Promise.all(
        Array.from({ length: 6 }, async (_, i) => {
          const limiter = i % 2 ? a : b;
          const grant = await limiter.acquire('p', 'ip', spec);
          times.push(performance.now());
          // The answer comes 50 ms after the grant: the next two wait a window from it.
          await new Promise((resolve) => setTimeout(resolve, 50));
          limiter.end(grant, { sent: true });
        }),
      );
      times.sort((x, y) => x - y);
      const first = times[0] ?? 0;
      // Pairs at 0, ≥ 250 and ≥ 500 ms.
      expect((times[2] ?? 0) - first).toBeGreaterThanOrEqual(245);
      expect((times[4] ?? 0) - first).toBeGreaterThanOrEqual(490);
      expect((times[5] ?? 0) - first).toBeLessThan(1_200);
      expect(await ctx.redis.exists(`${ctx.keyPrefix}ratelimit:p:ip`)).toBe(1);
    } finally {
      other.disconnect();
    }
  });

  test('a request in flight keeps its place until its answer; a slot given back unused frees at once', async () => {
    const limiter = new RateLimiter(ctx.redis, ctx.keyPrefix, ctx.metrics, ctx.logger);
    const held = [await limiter.acquire('q', 'ip', spec), await limiter.acquire('q', 'ip', spec)];
    let third: number | undefined;
    const started = performance.now();
    const waiting = limiter.acquire('q', 'ip', spec).then((g) => {
      third = performance.now() - started;
      return g;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(third).toBeUndefined(); // a window has passed, but both requests are still in flight
    limiter.end(held[0]!, { sent: false });
    const grant = await waiting;
    expect(third).toBeGreaterThanOrEqual(295);
    expect(third).toBeLessThan(300 + 200 + 150);
    limiter.end(grant, { sent: true });
    limiter.end(held[1]!, { sent: true });
  });

  test('a Redis that lost its data (no epoch) grants nothing until any earlier request would have left the window', async () => {
    const prefix = `${ctx.keyPrefix}empty:`;
    const limiter = new RateLimiter(ctx.redis, prefix, ctx.metrics, ctx.logger);
    const started = performance.now();
    const grant = await limiter.acquire('p', 'ip', spec);
    // hold (100 + 400) + window (200)
    expect(performance.now() - started).toBeGreaterThanOrEqual(690);
    limiter.end(grant, { sent: true });
    const again = performance.now();
    limiter.end(await limiter.acquire('p', 'ip', spec), { sent: true });
    expect(performance.now() - again).toBeLessThan(150);
  });
});

describe('http scaffold', () => {
  test('/readyz answers 503 naming the dependency that is down, /healthz stays 200', async () => {
    const dead = new Redis('redis://127.0.0.1:1', {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 200,
    });
    dead.on('error', () => undefined);
    const app = createHttpServer({
      logger: ctx.logger,
      metrics: ctx.metrics,
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
        checks: [
          { name: 'postgres', ok: true },
          { name: 'redis', ok: false },
        ],
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
