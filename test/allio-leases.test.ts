// Leases of the ALLIO sync across two replicas on the real servers: a worker that lost its lease
// while it held ALLIO's answer writes nothing once another replica took the task over, and a worker
// whose lease is renewed through a slow partner answer keeps its task.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { startAllioSimulator, type AllioSimulator } from '../services/simulators/allio/server.js';
import { createMetrics, type Metrics } from '../services/core/metrics.js';
import type { AllioSync } from '../services/allio-sync/service.js';
import { createTestContext, waitFor, type TestContext } from './support/context.js';
import { addIntegration, count, startSync } from './support/allio.js';

let ctx: TestContext;
let sim: AllioSimulator;
const running: AllioSync[] = [];

beforeAll(async () => {
  ctx = await createTestContext('leases');
  sim = await startAllioSimulator({ token: 'test-token' });
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop(1_000)));
  sim.reset();
});
afterAll(async () => {
  await sim.close();
  await ctx.close();
});

// The shortest lease the configuration accepts: a pause of a few seconds outlives it.
const env = { ALLIO_TASK_LEASE_MS: '1000' };

async function addTask(integrationId: string, ids: number[]): Promise<string> {
  const [row] = await ctx
    .db('allio_tasks')
    .insert({
      integration_id: integrationId,
      command: 'RESERVE_MOD',
      entity: 'reserve',
      op: 'upsert',
      external_ids: JSON.stringify(ids),
    })
    .returning('id');
  return String(row.id);
}

/**
 * An ALLIO in front of the simulator whose n-th answer has every `comment` replaced by `markers[n]`
 * and is held back until `hold(n)` resolves: the replicas share one integration URL, and the first
 * replica to call is the first to be answered.
 */
async function markingAllio(
  markers: string[],
  hold: (n: number) => Promise<void>,
  onAnswer?: (n: number) => void,
) {
  let calls = 0;
  const server = http.createServer((req, res) => {
    const n = calls++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const upstream = await fetch(`${sim.url}${req.url ?? ''}`, {
          method: 'POST',
          headers: {
            authorization: req.headers.authorization ?? '',
            'content-type': 'application/json',
          },
          body: Buffer.concat(chunks),
        });
        const body = (await upstream.json()) as { items: Record<string, unknown>[] };
        onAnswer?.(n);
        await hold(n);
        const items = body.items.map((item) => ({ ...item, comment: markers[n] ?? 'unmarked' }));
        res
          .writeHead(upstream.status, { 'content-type': 'application/json' })
          .end(JSON.stringify({ items }));
      })().catch((e: unknown) => res.destroy(e instanceof Error ? e : new Error(String(e))));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Lease losses a replica counted (`hub_lease_lost_total`), over every reconciler or one. */
async function leasesLost(m: Metrics, reconciler?: string): Promise<number> {
  const { values } = await m.leaseLost.get();
  return values
    .filter((v) => !reconciler || v.labels.reconciler === reconciler)
    .reduce((n, v) => n + v.value, 0);
}

/** Batches a replica's sync worker has finished handling, whatever their outcome. */
async function handled(m: Metrics): Promise<number> {
  const { values } = await m.reconcileDuration.get();
  return (
    values.find((v) => v.labels.reconciler === 'allio-sync' && v.metricName?.endsWith('_count'))
      ?.value ?? 0
  );
}

describe('allio sync leases', () => {
  test('a worker whose lease lapsed while it held the answer writes nothing over the newer data of the replica that took over', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let answered = false;
    const allio = await markingAllio(
      ['stale, read by A', 'fresh, read by B'],
      (n) => (n === 0 ? held : Promise.resolve()),
      (n) => {
        if (n === 0) answered = true;
      },
    );
    try {
      const it = await addIntegration(ctx.db, { baseUrl: allio.url });
      const taskId = await addTask(it.id, [501, 502, 503]);
      const metricsA = createMetrics();
      // A waits as long as it takes for its (held) answer.
      running.push(
        await startSync(ctx, {
          env: { ...env, ALLIO_HTTP_TIMEOUT_MS: '30000' },
          metrics: metricsA,
          owner: 'replica-a',
        }),
      );
      await waitFor(() => answered, 10_000, 'ALLIO to answer A');
      // A is now paused (for the database) past its lease: nothing renews it, it lapses.
      await ctx
        .db('allio_tasks')
        .where({ id: taskId })
        .update({ locked_until: ctx.db.raw(`now() - interval '1 second'`) });

      running.push(await startSync(ctx, { env, owner: 'replica-b' }));
      await waitFor(
        async () => (await count(ctx.db, 'allio_tasks', { id: taskId, status: 2 })) === 1,
        10_000,
        'B to finish the task',
      );
      const fresh = await ctx
        .db('crm_reservations')
        .where({ integration_id: it.id })
        .orderBy('external_id');
      expect(fresh.map((r) => r.custom_fields.comment)).toEqual(Array(3).fill('fresh, read by B'));

      release();
      await waitFor(async () => (await handled(metricsA)) >= 1, 10_000, 'A to finish its batch');
      const after = await ctx
        .db('crm_reservations')
        .where({ integration_id: it.id })
        .orderBy('external_id');
      expect(after.map((r) => r.custom_fields.comment)).toEqual(Array(3).fill('fresh, read by B'));
      expect(after.map((r) => r.synced_at.getTime())).toEqual(
        fresh.map((r) => r.synced_at.getTime()),
      );
      const task = await ctx.db('allio_tasks').where({ id: taskId }).first();
      expect(task).toMatchObject({ status: 2, attempts: 2 });
      expect(await leasesLost(metricsA, 'allio-sync')).toBe(1);
    } finally {
      release();
      await Promise.all(running.splice(0).map((s) => s.stop(1_000)));
      await allio.close();
    }
  });

  test('a worker whose lease is renewed through a partner answer three times the lease keeps its task: no other replica takes it', async () => {
    // The worker claims only once it holds a quota slot, so what it waits through while holding a
    // task is ALLIO's answer: held here for 3.5 s against a 1 s lease.
    const allio = await markingAllio(
      ['one answer'],
      () => new Promise<void>((resolve) => setTimeout(resolve, 3_500)),
    );
    try {
      const it = await addIntegration(ctx.db, { baseUrl: allio.url });
      const slow = { ...env, ALLIO_HTTP_TIMEOUT_MS: '30000' };
      const metrics = [createMetrics(), createMetrics()];
      running.push(
        await startSync(ctx, { env: slow, metrics: metrics[0], owner: 'replica-a' }),
        await startSync(ctx, { env: slow, metrics: metrics[1], owner: 'replica-b' }),
      );
      const taskId = await addTask(it.id, [601, 602]);
      await waitFor(
        async () => (await count(ctx.db, 'allio_tasks', { id: taskId, status: 2 })) === 1,
        20_000,
        'the task to finish',
      );
      const task = await ctx.db('allio_tasks').where({ id: taskId }).first();
      expect(task.attempts).toBe(1);
      expect(sim.stats().requests).toBe(1);
      expect(await count(ctx.db, 'crm_reservations', { integration_id: it.id })).toBe(2);
      for (const m of metrics) expect(await leasesLost(m)).toBe(0);
    } finally {
      await Promise.all(running.splice(0).map((s) => s.stop(1_000)));
      await allio.close();
    }
  });
});
