// The daily retention purge on real PostgreSQL: old finished rows go, fresh and unfinished rows
// and the rows the code still reads stay, two replicas running at once purge once, and every
// DELETE stays within its batch.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { pino } from 'pino';
import { loadConfig, retentionEnv, ConfigError } from '../services/core/config.js';
import { createMetrics } from '../services/core/metrics.js';
import { PERIODIC_RUNS } from '../services/core/engine/periodic.js';
import { purgeRules, purgeBatchSql, type PurgeRule } from '../services/core/retention/policies.js';
import { purge } from '../services/core/retention/purge.js';
import { createRetention, RETENTION_JOB } from '../services/core/retention/service.js';
import { addIntegration, count } from './support/allio.js';
import { createTestContext, waitFor, type TestContext } from './support/context.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext('retention');
});
afterAll(async () => {
  await ctx.close();
});

const ago = (days: number) => new Date(Date.now() - days * 86_400_000);

/** Rows of every purged table, each named by what the purge must do with it. */
async function seed() {
  const db = ctx.db;
  const integration = await addIntegration(db, { baseUrl: 'https://allio.example' });
  const itId = (
    await db('allio_integrations').where({ name: integration.name }).first<{ id: string }>()
  ).id;
  const webhook = async (status: number, age: number) =>
    (
      await db('allio_webhook')
        .insert({
          integration_uuid: integration.uuid,
          integration_id: itId,
          command: 'RESERVE_UPD',
          external_ids_array: '[1]',
          status,
          updated_at: ago(age),
        })
        .returning('id')
    )[0].id as string;
  const task = async (status: number, age: number, webhookId: string | null = null) =>
    (
      await db('allio_tasks')
        .insert({
          integration_id: itId,
          webhook_id: webhookId,
          command: 'RESERVE_UPD',
          entity: 'reserve',
          op: 'upsert',
          external_ids: '[1]',
          status,
          updated_at: ago(age),
        })
        .returning('id')
    )[0].id as string;
  const ids = {
    webhookOldDone: await webhook(2, 40),
    webhookOldDoneOpenTask: await webhook(2, 40),
    webhookFreshDone: await webhook(2, 5),
    webhookOldFailed: await webhook(3, 40),
    webhookAncientFailed: await webhook(3, 100),
    webhookOldPending: await webhook(0, 40),
    webhookOldInProgress: await webhook(1, 40),
  } as Record<string, string>;
  ids.taskOpenOfOldWebhook = await task(0, 40, ids.webhookOldDoneOpenTask!);
  ids.taskOldDone = await task(2, 40, ids.webhookOldDone!);
  ids.taskFreshDone = await task(2, 1);
  ids.taskOldFailed = await task(3, 40);
  ids.taskAncientFailed = await task(3, 91);

  const [partner] = await db('smart_home_partners')
    .insert({
      name: 'acme',
      services: ['intercom'],
      command_queue: 'acme.commands',
      oauth_client_id: 'acme',
    })
    .returning('id');
  const [sub] = await db('smart_home_subscriptions')
    .insert({
      tenant_id: 'tenant-1',
      service: 'intercom',
      partner_id: partner.id,
      partner_ref: randomUUID(),
      state: 'connected',
      last_operation: 'connect',
    })
    .returning('id');
  const request = async (status: number, age: number) =>
    (
      await db('smart_home_requests')
        .insert({
          request_uuid: randomUUID(),
          subscription_id: sub.id,
          tenant_id: 'tenant-1',
          kind: 'connect',
          status,
          updated_at: ago(age),
        })
        .returning('id')
    )[0].id as string;
  ids.requestOldSuperseded = await request(2, 60);
  ids.requestOldLatest = await request(2, 50);

  const event = async (
    table: 'kitchen_warehouse_events' | 'kitchen_outbox',
    status: number,
    age: number,
  ) => {
    const row =
      table === 'kitchen_outbox'
        ? { event_id: randomUUID(), order_id: randomUUID(), tenant_id: 't', state: 'paid' }
        : {
            webhook_id: `msg_${randomUUID()}`,
            type: 'stock.level',
            payload: '{}',
            occurred_at: ago(age),
          };
    return (
      await db(table)
        .insert({ ...row, status, updated_at: ago(age) })
        .returning('id')
    )[0].id as string;
  };
  ids.outboxOldDone = await event('kitchen_outbox', 2, 31);
  ids.outboxOldPending = await event('kitchen_outbox', 0, 31);
  ids.warehouseOldDone = await event('kitchen_warehouse_events', 2, 31);
  ids.warehouseDoneInsideFloor = await event('kitchen_warehouse_events', 2, 3);

  const run = async (name: string, status: number, age: number) =>
    (
      await db(PERIODIC_RUNS)
        .insert({ name, period_key: randomUUID(), status, updated_at: ago(age) })
        .returning('id')
    )[0].id as string;
  ids.runOldDone = await run('kitchen-1c-export', 2, 40);
  ids.runDoneInsideCatchUp = await run('kitchen-1c-export', 2, 20);

  const letter = async (status: number | null, age: number) =>
    (
      await db('dead_letters')
        .insert({
          fingerprint: randomUUID(),
          queue: 'q.dead',
          routing_key: 'k',
          reason: 'rejected',
          properties: '{}',
          body: Buffer.from('x'),
          body_bytes: 1,
          status,
          updated_at: ago(age),
        })
        .returning('id')
    )[0].id as string;
  ids.letterOldReplayed = await letter(2, 40);
  ids.letterOldKept = await letter(null, 40);
  ids.letterAncientKept = await letter(null, 100);
  ids.letterOldReplaying = await letter(0, 100);
  return ids;
}

const GONE = [
  'webhookOldDone',
  'webhookAncientFailed',
  'taskOldDone',
  'taskAncientFailed',
  'requestOldSuperseded',
  'outboxOldDone',
  'warehouseOldDone',
  'runOldDone',
  'letterOldReplayed',
  'letterAncientKept',
];
const TABLE: Record<string, string> = {
  webhook: 'allio_webhook',
  task: 'allio_tasks',
  request: 'smart_home_requests',
  outbox: 'kitchen_outbox',
  warehouse: 'kitchen_warehouse_events',
  run: PERIODIC_RUNS,
  letter: 'dead_letters',
};
const tableOf = (name: string) => TABLE[/^[a-z]+/.exec(name)![0]]!;

async function present(ids: Record<string, string>): Promise<Record<string, boolean>> {
  const out: Record<string, boolean> = {};
  for (const [name, id] of Object.entries(ids)) {
    out[name] = (await count(ctx.db, tableOf(name), { id })) === 1;
  }
  return out;
}

describe('retention purge', () => {
  test('two replicas at once: old finished rows go once, fresh, unfinished and still-needed rows stay', async () => {
    const ids = await seed();
    const config = loadConfig(retentionEnv, {
      RETENTION_BATCH_SIZE: '2',
      RETENTION_BATCH_PAUSE_MS: '0',
      RETENTION_TIME: '00:00',
    });
    const lines: { msg: string; purged?: Record<string, number> }[] = [];
    const logger = pino(
      { level: 'info' },
      { write: (s: string) => void lines.push(JSON.parse(s)) },
    );
    const replicas = ['a', 'b'].map((owner) => {
      const metrics = createMetrics();
      return {
        metrics,
        retention: createRetention({
          db: owner === 'a' ? ctx.db : ctx.newDb(),
          config,
          logger,
          metrics,
          owner,
          pollMaxMs: 1_000,
        }),
      };
    });
    await Promise.all(replicas.map((r) => r.retention.start()));
    try {
      await waitFor(
        async () => (await count(ctx.db, PERIODIC_RUNS, { name: RETENTION_JOB, status: 2 })) === 1,
        20_000,
        "the day's purge done",
      );
    } finally {
      await Promise.all(replicas.map((r) => r.retention.stop()));
    }

    const after = await present(ids);
    for (const [name, there] of Object.entries(after)) {
      expect([name, there]).toEqual([name, !GONE.includes(name)]);
    }
    expect(await count(ctx.db, PERIODIC_RUNS, { name: RETENTION_JOB })).toBe(1);

    // Counted once across both replicas, per table.
    const total: Record<string, number> = {};
    for (const r of replicas) {
      const m = await r.metrics.registry.getSingleMetric('hub_retention_rows_purged_total')!.get();
      for (const v of m.values) {
        total[String(v.labels.table)] = (total[String(v.labels.table)] ?? 0) + v.value;
      }
    }
    const expected: Record<string, number> = {};
    for (const name of GONE) expected[tableOf(name)] = (expected[tableOf(name)] ?? 0) + 1;
    expect(Object.fromEntries(Object.entries(total).filter(([, v]) => v > 0))).toEqual(expected);

    const finished = lines.filter((l) => l.msg === 'retention purge finished');
    expect(finished).toHaveLength(1);
    expect(finished[0]!.purged).toEqual(expected);
  });

  test('every DELETE takes at most the batch size, and the purge runs until none is left', async () => {
    const [{ id: itId }] = await ctx.db('allio_integrations').select('id').limit(1);
    await ctx.db('allio_tasks').insert(
      Array.from({ length: 53 }, () => ({
        integration_id: itId,
        command: 'RESERVE_UPD',
        entity: 'reserve',
        op: 'upsert',
        external_ids: '[2]',
        status: 2,
        updated_at: ago(45),
      })),
    );
    const rules = purgeRules({ doneDays: 30, failedDays: 90, tableDays: {} }).filter(
      (r) => r.table === 'allio_tasks',
    );
    const batches: number[] = [];
    let renewals = 0;
    const result = await purge(ctx.db, rules, {
      batchSize: 10,
      pauseMs: 1,
      renew: async () => ++renewals > 0,
      onBatch: (_r, n) => batches.push(n),
    });
    expect(result.purged.allio_tasks).toBe(53);
    expect(Math.max(...batches)).toBe(10);
    // 5 full batches and the short one of done rows, then one (empty) batch of failed rows.
    expect(batches).toEqual([10, 10, 10, 10, 10, 3, 0]);
    expect(renewals).toBe(batches.length);
  });

  test('a purge whose lease was taken over stops before its next batch', async () => {
    const [{ id: itId }] = await ctx.db('allio_integrations').select('id').limit(1);
    await ctx.db('allio_tasks').insert(
      Array.from({ length: 30 }, () => ({
        integration_id: itId,
        command: 'RESERVE_UPD',
        entity: 'reserve',
        op: 'upsert',
        external_ids: '[3]',
        status: 2,
        updated_at: ago(45),
      })),
    );
    let held = 2;
    const rules = purgeRules({ doneDays: 30, failedDays: 90, tableDays: {} }).filter(
      (r) => r.table === 'allio_tasks',
    );
    const result = await purge(ctx.db, rules, {
      batchSize: 10,
      pauseMs: 0,
      renew: async () => held-- > 0,
    });
    expect(result).toMatchObject({ stopped: 'lease_lost', batches: 2 });
    expect(await count(ctx.db, 'allio_tasks', { external_ids: '[3]' })).toBe(10);
    await ctx.db('allio_tasks').where({ external_ids: '[3]' }).delete();
  });

  test('each batch walks the index of finished rows, not the table', async () => {
    const plans: Record<string, string> = {};
    for (const rule of purgeRules({ doneDays: 30, failedDays: 90, tableDays: {} }) as PurgeRule[]) {
      const plan = await ctx.db.transaction(async (trx) => {
        await trx.raw('set local enable_seqscan = off');
        const { rows } = await trx.raw<{ rows: { 'QUERY PLAN': string }[] }>(
          `explain ${purgeBatchSql(rule)}`,
          [rule.days, 1000, rule.days],
        );
        return rows.map((r) => r['QUERY PLAN']).join('\n');
      });
      plans[`${rule.table}/${rule.kind}`] = plan;
      expect([rule.table, rule.kind, plan.includes(`${rule.table}_finished`)]).toEqual([
        rule.table,
        rule.kind,
        true,
      ]);
    }
  });

  test("RETENTION_TABLE_DAYS is validated: unknown tables and days below a table's floor are named", () => {
    expect(
      loadConfig(retentionEnv, { RETENTION_TABLE_DAYS: 'allio_webhook=7, kitchen_outbox=14' })
        .RETENTION_TABLE_DAYS,
    ).toEqual({ allio_webhook: 7, kitchen_outbox: 14 });
    const refused = (v: string) => {
      try {
        loadConfig(retentionEnv, { RETENTION_TABLE_DAYS: v });
        return '';
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
    };
    expect(refused('crm_deals=3')).toMatch(/RETENTION_TABLE_DAYS crm_deals is not a purged table/);
    expect(refused('kitchen_warehouse_events=2')).toMatch(
      /RETENTION_TABLE_DAYS kitchen_warehouse_events keeps its rows from 7 to 3650 days, not 2/,
    );
    expect(refused('allio_tasks')).toMatch(/RETENTION_TABLE_DAYS "allio_tasks" is not table=days/);
    expect(refused('x')).not.toBe('');
  });
});
