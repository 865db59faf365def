// Reliability of the ALLIO sync on the real servers: a worker killed mid-task, graceful shutdown,
// two replicas sharing the quota, the daily deletion sweep across replicas, Redis unreachable.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { Redis } from 'ioredis';
import { startAllioSimulator, type AllioSimulator } from '../services/simulators/allio/server.js';
import { createMetrics } from '../services/core/metrics.js';
import type { AllioSync } from '../services/allio-sync/service.js';
import { DELETION_JOB, SKIP_DISABLED } from '../services/domains/allio/deletion-sweep.js';
import {
  createTestContext,
  DATABASE_URL,
  REDIS_URL,
  waitFor,
  type TestContext,
} from './support/context.js';
import { addIntegration, count, startSync } from './support/allio.js';
import { expectCleanExit, listeningPort, startServiceProcess } from './support/process.js';

let ctx: TestContext;
let sim: AllioSimulator;
const running: AllioSync[] = [];

beforeAll(async () => {
  ctx = await createTestContext('reliab');
  sim = await startAllioSimulator({ token: 'test-token' });
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop(1_000)));
  sim.setLatency(0);
  sim.reset();
});
afterAll(async () => {
  await sim.close();
  await ctx.close();
});

const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

async function addTasks(integrationId: string, command: string, lists: number[][]) {
  const [entity, verb] = command.split('_') as [string, string];
  await ctx.db('allio_tasks').insert(
    lists.map((l) => ({
      integration_id: integrationId,
      command,
      entity: entity === 'RESERVE' ? 'reserve' : 'dealcard',
      op: verb === 'DEL' ? 'delete' : 'upsert',
      external_ids: JSON.stringify(l),
    })),
  );
}

function childEnv(extra: Record<string, string> = {}) {
  return {
    DATABASE_URL,
    DATABASE_SCHEMA: ctx.schema,
    REDIS_URL,
    REDIS_KEY_PREFIX: ctx.keyPrefix,
    PORT: '0',
    LOG_LEVEL: 'info',
    // The ALLIO simulator speaks plain HTTP on 127.0.0.1.
    OUTBOUND_ALLOW_HTTP: 'true',
    ...extra,
  };
}

describe('allio sync reliability', () => {
  test('a worker killed mid-task loses nothing: the lease expires and another worker finishes once', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: sim.url });
    sim.setLatency(10_000);
    await addTasks(it.id, 'RESERVE_ADD', [ids(100, 40), ids(140, 40)]);
    const worker = startServiceProcess(
      'services/allio-sync/main.ts',
      childEnv({ ALLIO_TASK_LEASE_MS: '1500' }),
    );
    await waitFor(async () => sim.stats().requests >= 1, 15_000, 'the child to call ALLIO');
    const held = await ctx.db('allio_tasks').where({ integration_id: it.id, status: 1 });
    expect(held).toHaveLength(2);
    worker.child.kill('SIGKILL');
    expect(await worker.exited).toBe('SIGKILL');

    sim.setLatency(0);
    running.push(await startSync(ctx));
    await waitFor(
      async () => (await count(ctx.db, 'allio_tasks', { integration_id: it.id, status: 2 })) === 2,
      15_000,
    );
    const tasks = await ctx.db('allio_tasks').where({ integration_id: it.id });
    expect(tasks.map((t) => t.attempts)).toEqual([2, 2]);
    expect(await count(ctx.db, 'crm_reservations', { integration_id: it.id })).toBe(80);
  });

  test('SIGTERM lets the in-flight batch finish, then the process exits 0', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: sim.url });
    sim.setLatency(1_500);
    await addTasks(it.id, 'RESERVE_ADD', [ids(300, 5)]);
    const worker = startServiceProcess('services/allio-sync/main.ts', childEnv());
    await waitFor(async () => sim.stats().requests >= 1, 15_000, 'the child to call ALLIO');
    worker.child.kill('SIGTERM');
    await expectCleanExit(worker);
    const task = await ctx.db('allio_tasks').where({ integration_id: it.id }).first();
    expect(task).toMatchObject({ status: 2, attempts: 1 });
    expect(await count(ctx.db, 'crm_reservations', { integration_id: it.id })).toBe(5);
    expect(worker.output()).toMatch(/"msg":"stopped"/);
  });

  test('SIGTERM while Redis is down ends the limiter waits at once: the task, never claimed, stays for others and the process exits 0', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: sim.url });
    await addTasks(it.id, 'RESERVE_ADD', [ids(900, 3)]);
    // SHUTDOWN_TIMEOUT_MS is how long in-flight requests may finish; a wait for a slot is not one.
    const worker = startServiceProcess(
      'services/allio-sync/main.ts',
      childEnv({ REDIS_URL: 'redis://127.0.0.1:1', SHUTDOWN_TIMEOUT_MS: '20000' }),
    );
    try {
      // Redis down is said once (its state line); the limiter's failed calls are counted while it waits.
      const port = await listeningPort(worker);
      await waitFor(
        async () =>
          /hub_ratelimit_errors_total\{[^}]*\} [1-9]/.test(
            await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(),
          ),
        15_000,
        'the limiter to wait for Redis',
      );
      // A claim waits for its slot first: a replica without Redis leaves the task to one with it.
      expect(
        await count(ctx.db, 'allio_tasks', { integration_id: it.id, status: 0, attempts: 0 }),
      ).toBe(1);
      const signalled = Date.now();
      worker.child.kill('SIGTERM');
      await expectCleanExit(worker);
      expect(Date.now() - signalled).toBeLessThan(5_000);
      // One wait per claim loop (ALLIO_WORKER_CONCURRENCY), every one of them for Redis.
      expect(worker.output()).toMatch(
        /"msg":"rate limiter closed: (\d+) calls stopped waiting \(\1 for Redis to answer, 0 for a slot\)"/,
      );
      const task = await ctx.db('allio_tasks').where({ integration_id: it.id }).first();
      expect(task).toMatchObject({ status: 0, attempts: 0 });
      expect(sim.stats().requests).toBe(0);
    } finally {
      // A failure above must not leave a worker that holds claims for the next test.
      if (worker.child.exitCode === null && worker.child.signalCode === null) {
        worker.child.kill('SIGKILL');
      }
      await worker.exited;
      await ctx.db('allio_integrations').where({ id: it.id }).update({ active: false });
    }
  }, 60_000);

  test('two replicas together never exceed 2 requests per second at ALLIO', async () => {
    // The day's deletion sweep would add its own requests for the earlier tests' integrations to
    // the ten counted here: they are switched off, and this one has no deletion control.
    await ctx.db('allio_integrations').update({ active: false });
    const it = await addIntegration(ctx.db, { baseUrl: sim.url, deletionControl: false });
    // Ten full batches: ten requests that the two replicas race for.
    await addTasks(
      it.id,
      'RESERVE_ADD',
      Array.from({ length: 10 }, (_, i) => ids(10_000 + i * 100, 100)),
    );
    const second = ctx.newDb();
    const secondRedis = new Redis(REDIS_URL);
    try {
      // An egress of their own, so a quota of their own: the worker killed in an earlier test left a
      // request ALLIO had not answered, and the limiter rightly holds that slot until the request's
      // deadline; on the shared egress these replicas would get one request a second meanwhile.
      const env = { EGRESS_IP: 'two-replicas' };
      running.push(
        await startSync(ctx, { env }),
        await startSync(ctx, { env, db: second, redis: secondRedis }),
      );
      await waitFor(
        async () =>
          (await count(ctx.db, 'allio_tasks', { integration_id: it.id, status: 2 })) === 10,
        20_000,
      );
      const stats = sim.stats();
      expect(stats.violations).toBe(0);
      expect(stats.maxInWindow).toBeLessThanOrEqual(2);
      // Arrivals, as ALLIO counts them (an answer still on its way from an earlier test may land in `served`).
      expect(stats.requests).toBe(10);
      // From the first arrival to the last, as ALLIO saw them. It counts 2 in any rolling second,
      // so the fastest legal schedule sends two at once and the ninth and tenth a full window after
      // the seventh and eighth: at least 4 windows. Each next pair waits a window from the answers,
      // so about 4.2 s is the expected span; replicas that each kept to a share of their own (one
      // request a second) would take 9 s, a wasted half of the quota.
      const span = (stats.lastRequestAt ?? 0) - (stats.firstRequestAt ?? 0);
      expect(span).toBeGreaterThanOrEqual(4_000);
      expect(span).toBeLessThan(7_500);
      expect(await count(ctx.db, 'crm_reservations', { integration_id: it.id })).toBe(1000);
    } finally {
      await Promise.all(running.splice(0).map((s) => s.stop(1_000)));
      secondRedis.disconnect();
    }
  });

  test('deletion control runs once per day across two replicas and skips integrations without it', async () => {
    // Its own schema: the other tests' replicas already ran today's (empty) sweep in theirs.
    const outer = ctx;
    ctx = await createTestContext('deletion');
    try {
      await deletionScenario();
    } finally {
      await Promise.all(running.splice(0).map((s) => s.stop(1_000)));
      await ctx.close();
      ctx = outer;
    }
  });

  async function deletionScenario() {
    const withControl = await addIntegration(ctx.db, { baseUrl: sim.url, deletionControl: true });
    const without = await addIntegration(ctx.db, { baseUrl: sim.url, deletionControl: false });
    for (const it of [withControl, without]) {
      await ctx
        .db('crm_reservations')
        .insert(ids(1, 3).map((n) => ({ integration_id: it.id, external_id: String(n) })));
      await ctx.db('crm_deals').insert({ integration_id: it.id, external_id: '9' });
      await addTasks(it.id, 'RESERVE_DEL', [[1, 2]]);
      await addTasks(it.id, 'DEALCARD_DEL', [[9]]);
    }
    const metricsA = createMetrics();
    const metricsB = createMetrics();
    const second = ctx.newDb();
    // The sweep is due from 00:00 UTC, so today's run is due at once.
    const env = { ALLIO_DELETION_TIME: '00:00' };
    running.push(
      await startSync(ctx, { env, metrics: metricsA }),
      await startSync(ctx, { env, metrics: metricsB, db: second }),
    );
    const run = await waitFor(
      async () => {
        const r = await ctx.db('periodic_runs').where({ name: DELETION_JOB, status: 2 }).first();
        return r;
      },
      10_000,
      'the sweep to finish',
    );
    expect(await count(ctx.db, 'periodic_runs', { name: DELETION_JOB })).toBe(1);
    expect(run.period_key).toBe(new Date().toISOString().slice(0, 10));
    expect(run.result).toMatchObject({ deleted: 3, skipped: 2 });

    const deleted = await ctx
      .db('crm_reservations')
      .where({ integration_id: withControl.id })
      .orderBy('external_id');
    expect(deleted.map((r) => [r.external_id, r.deleted_at !== null])).toEqual([
      ['1', true],
      ['2', true],
      ['3', false],
    ]);
    expect(
      (await ctx.db('crm_deals').where({ integration_id: withControl.id }).first()).deleted_at,
    ).not.toBeNull();
    expect(
      await ctx
        .db('crm_reservations')
        .where({ integration_id: without.id })
        .whereNotNull('deleted_at'),
    ).toHaveLength(0);
    const skipped = await ctx.db('allio_tasks').where({ integration_id: without.id, op: 'delete' });
    expect(skipped.map((t) => [t.status, t.skip_reason])).toEqual([
      [2, SKIP_DISABLED],
      [2, SKIP_DISABLED],
    ]);

    // Both replicas scheduling again the same day creates no second run.
    await Promise.all(running.map((s) => s.scheduler.tick()));
    expect(await count(ctx.db, 'periodic_runs', { name: DELETION_JOB })).toBe(1);
    const done = async (m: ReturnType<typeof createMetrics>) =>
      (await m.reconcileAttempts.get()).values.find(
        (v) => v.labels.reconciler === 'allio-deletion-sweep' && v.labels.outcome === 'done',
      )?.value ?? 0;
    expect((await done(metricsA)) + (await done(metricsB))).toBe(1);
  }

  test('with Redis unreachable the limiter holds every call: ALLIO sees no request', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: sim.url });
    const deadRedis = new Redis('redis://127.0.0.1:1', {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: () => 200,
      // ioredis keeps its connect timer alive briefly after disconnect(); keep it short.
      connectTimeout: 200,
    });
    deadRedis.on('error', () => undefined);
    const metrics = createMetrics();
    try {
      const sync = await startSync(ctx, { redis: deadRedis, metrics });
      await addTasks(it.id, 'RESERVE_ADD', [ids(700, 3)]);
      await waitFor(
        async () => ((await metrics.rateLimitErrors.get()).values[0]?.value ?? 0) >= 3,
        10_000,
        'limiter errors',
      );
      expect(sim.stats().requests).toBe(0);
      // Claims wait for their slot first: the task is not held by a replica that cannot send it.
      const task = await ctx.db('allio_tasks').where({ integration_id: it.id }).first();
      expect(task.status).toBe(0);
      await sync.stop(200);
      // Shutdown leaves it untouched for a healthy replica to take.
      const released = await ctx.db('allio_tasks').where({ integration_id: it.id }).first();
      expect(released).toMatchObject({ status: 0, attempts: 0 });
      expect(sim.stats().requests).toBe(0);
    } finally {
      deadRedis.disconnect();
    }
  });
});
