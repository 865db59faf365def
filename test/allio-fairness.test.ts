// Fair share of ALLIO's quota between integrations behind one egress IP, on the real limiter, Redis,
// PostgreSQL and the ALLIO simulator (at 10 requests/s, so each case takes seconds): one client's
// backlog does not hold up another's webhook, weights split the requests, and an integration that
// was idle earns no credit to starve the others with later.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { startAllioSimulator, type AllioSimulator } from '../services/simulators/allio/server.js';
import type { AllioSync } from '../services/allio-sync/service.js';
import { createTestContext, type TestContext } from './support/context.js';
import { addIntegration, startSync, type TestIntegration } from './support/allio.js';

const RATE = 10;
const ENV = { ALLIO_RATE_PER_SECOND: String(RATE) };

let ctx: TestContext;
let sim: AllioSimulator;
let running: AllioSync[] = [];

beforeAll(async () => {
  ctx = await createTestContext('allio-fair');
  sim = await startAllioSimulator({ token: 'test-token', ratePerSecond: RATE });
});
afterEach(async () => {
  await Promise.all(running.map((s) => s.stop(5_000)));
  running = [];
  // The next case starts with no other integration's backlog.
  await ctx.db('allio_tasks').whereNot({ status: 2 }).delete();
});
afterAll(async () => {
  await sim.close();
  await ctx.close();
});

async function integration(weight = 1): Promise<TestIntegration> {
  const it = await addIntegration(ctx.db, { baseUrl: sim.url });
  await ctx.db('allio_integrations').where({ id: it.id }).update({ weight });
  return it;
}

/** `tasks` upsert tasks of 100 ids each (one ALLIO request apiece), due since `agoSeconds`. */
async function backlog(
  it: TestIntegration,
  tasks: number,
  firstId: number,
  agoSeconds = 60,
): Promise<void> {
  await ctx.db.raw(
    `insert into allio_tasks (integration_id, entity, op, command, external_ids, next_attempt_at)
     select ?, 'reserve', 'upsert', 'RESERVE_ADD',
            (select json_agg(? + (t - 1) * 100 + k)::text from generate_series(1, 100) k),
            now() - make_interval(secs => ?)
       from generate_series(1, ?) t`,
    [it.id, firstId, agoSeconds, tasks],
  );
}

/** Done tasks of each of `its`. */
async function doneBy(...its: TestIntegration[]): Promise<Map<string, number>> {
  const rows: { integration_id: string; n: string }[] = await ctx
    .db('allio_tasks')
    .where({ status: 2 })
    .whereIn(
      'integration_id',
      its.map((i) => i.id),
    )
    .groupBy('integration_id')
    .select('integration_id')
    .count('* as n');
  return new Map(rows.map((r) => [String(r.integration_id), Number(r.n)]));
}

async function until<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

async function replicas(n: number): Promise<void> {
  for (let i = 0; i < n; i++) running.push(await startSync(ctx, { env: ENV, owner: `fair-${i}` }));
}

describe('ALLIO fair share', () => {
  test("one integration's backlog of 200 requests does not hold another's webhook for more than 3 s", async () => {
    sim.reset();
    const bulk = await integration();
    const other = await integration();
    await backlog(bulk, 200, 1_000_000);
    await replicas(2);
    await until(
      'the backlog to be under way',
      async () => ((await doneBy(bulk)).get(bulk.id) ?? 0) >= 10 || undefined,
    );

    const sent = Date.now();
    await ctx.db('allio_webhook').insert({
      integration_id: other.id,
      integration_uuid: other.uuid,
      command: 'RESERVE_ADD',
      external_ids_array: '[42]',
    });
    const waitedMs = await until('the webhook to reach the CRM', async () => {
      const row = await ctx
        .db('crm_reservations')
        .where({ integration_id: other.id, external_id: '42' })
        .first();
      return row ? Date.now() - sent : undefined;
    });
    const bulkLeft = await ctx
      .db('allio_tasks')
      .where({ integration_id: bulk.id })
      .whereNot({ status: 2 })
      .count<{ n: string }[]>('* as n');
    // Served oldest first, it would have waited for the rest of the backlog: 150+ requests, 15+ s.
    expect({
      waitedUnder3s: waitedMs < 3_000,
      bulkStillWaiting: Number(bulkLeft[0]?.n) > 100,
      violations: sim.stats().violations,
    }).toEqual({ waitedUnder3s: true, bulkStillWaiting: true, violations: 0 });
  }, 90_000);

  test('weights 3 and 1 split the requests 3 to 1 while both have work waiting', async () => {
    sim.reset();
    const heavy = await integration(3);
    const light = await integration(1);
    await backlog(heavy, 100, 2_000_000);
    await backlog(light, 100, 3_000_000);
    await replicas(2);
    await until('40 requests', async () => total(await doneBy(heavy, light)) >= 40 || undefined);
    await Promise.all(running.map((s) => s.stop(5_000)));
    running = [];
    const done = await doneBy(heavy, light);
    const ratio = (done.get(heavy.id) ?? 0) / (done.get(light.id) ?? 1);
    expect({
      ratioNear3: ratio >= 2.4 && ratio <= 3.6,
      violations: sim.stats().violations,
    }).toEqual({ ratioNear3: true, violations: 0 });
  }, 90_000);

  test('an integration that was idle while another used the whole quota then gets half of it, not all', async () => {
    sim.reset();
    const busy = await integration();
    const late = await integration();
    await backlog(busy, 150, 4_000_000);
    await replicas(2);
    await until(
      '30 requests for the busy integration',
      async () => ((await doneBy(busy)).get(busy.id) ?? 0) >= 30 || undefined,
    );
    // Older than the busy one's remaining tasks, so oldest-first would serve it alone.
    await backlog(late, 100, 5_000_000, 3_600);
    const before = await doneBy(busy, late);
    await until(
      '30 more requests',
      async () => total(await doneBy(busy, late)) - total(before) >= 30 || undefined,
    );
    await Promise.all(running.map((s) => s.stop(5_000)));
    running = [];
    const after = await doneBy(busy, late);
    const lateShare = (after.get(late.id) ?? 0) / (total(after) - total(before));
    expect({
      lateShareAboutHalf: lateShare >= 0.3 && lateShare <= 0.7,
      violations: sim.stats().violations,
    }).toEqual({ lateShareAboutHalf: true, violations: 0 });
  }, 90_000);
});
