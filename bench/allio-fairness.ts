// Fair share of ALLIO's quota: 10 integrations behind one egress IP, one holding a bulk backlog, the
// others sending small webhooks at a steady rate. Prints each integration's webhook latency (commit
// of the webhook row → commit of its CRM rows), the quota used against ALLIO's physical ceiling and
// the simulator's violations; then the same backlog drained through one egress IP and through two
// (replica groups with their own EGRESS_IP and source address), records/s against each other.
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createAllioSync, type AllioSync } from '../services/allio-sync/service.js';
import { MAX_IDS_PER_REQUEST } from '../services/domains/allio/commands.js';
import { allioEnv, loadConfig } from '../services/core/config.js';
import { createDb, quoteIdent, type Db } from '../services/core/db.js';
import { WorkListener } from '../services/core/engine/notify.js';
import { migrate } from '../services/core/migrate.js';
import { createMetrics } from '../services/core/metrics.js';
import { markRateLimitEpoch } from '../services/core/ratelimit/limiter.js';
import { createRedis } from '../services/core/redis.js';
import { startAllioSimulator, type AllioSimulator } from '../services/simulators/allio/server.js';
import { addIntegration, BENCH_TOKEN } from './allio.js';
import {
  DATABASE_URL,
  REDIS_URL,
  benchLogger,
  deleteKeys,
  envInt,
  fmt,
  uniqueName,
  withDeadline,
} from './support.js';

const INTEGRATIONS = 10;
/** Replicas per egress IP, each with the default concurrency (2 batches). */
const REPLICAS_PER_IP = 2;

export interface FairnessOptions {
  /** ALLIO's requests per second per IP (2, as ALLIO; the CI smoke test runs faster). */
  rate: number;
  /** Ids of the one integration's backlog. */
  bulkIds: number;
  /** How long the other nine send webhooks. */
  seconds: number;
  /** Webhooks per second, all nine together. */
  webhooksPerSecond: number;
  /** Length of each of the two drains (one egress IP, then two). */
  ipSeconds: number;
}

export function fairnessOptions(): FairnessOptions {
  // 100 s of webhooks at 1/s gives 100 latencies for the p99; with the two 20 s drains and set-up
  // the default run takes about 2.5 minutes. BENCH_FAIRNESS_SECONDS=600 for a longer look.
  return {
    rate: envInt('BENCH_FAIRNESS_RATE', 2),
    bulkIds: envInt('BENCH_FAIRNESS_BULK_IDS', 100_000),
    seconds: envInt('BENCH_FAIRNESS_SECONDS', 100),
    webhooksPerSecond: envInt('BENCH_FAIRNESS_WEBHOOKS_PER_SECOND', 1),
    ipSeconds: envInt('BENCH_FAIRNESS_IP_SECONDS', 20),
  };
}

export interface LatencyRow {
  integration: string;
  webhooks: number;
  requests: number;
  p50: number;
  p99: number;
  max: number;
}

export interface FairnessResult {
  options: FairnessOptions;
  rows: LatencyRow[];
  /** Over every webhook of the nine. */
  webhooks: LatencyRow;
  /** Webhooks whose records never reached the CRM. */
  lost: number;
  requests: number;
  seconds: number;
  /** requests / (rate × seconds): the share of ALLIO's physical ceiling used. */
  quotaUse: number;
  violations: number;
  oneIp: number;
  twoIps: number;
  /** twoIps / oneIp; the goal is about 2. */
  ipRatio: number;
  ipViolations: number;
}

interface Replica {
  db: Db;
  redis: Redis;
  listener: WorkListener;
  sync: AllioSync;
}

interface Env {
  schema: string;
  keyPrefix: string;
  admin: Db;
  sim: AllioSimulator;
  options: FairnessOptions;
}

export async function runAllioFairnessBench(options = fairnessOptions()): Promise<FairnessResult> {
  const schema = uniqueName('bench_fair');
  const keyPrefix = `bench:${schema}:`;
  const admin = createDb(
    { DATABASE_URL, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: 10 },
    { applicationName: 'bench-fair' },
  );
  const redis = createRedis({ REDIS_URL, REDIS_KEY_PREFIX: keyPrefix });
  let sim: AllioSimulator | undefined;
  console.log(
    `\n== allio-fairness: ${INTEGRATIONS} integrations, one with ${fmt(options.bulkIds)} ids of backlog, ` +
      `${options.webhooksPerSecond} webhook/s from the others for ${options.seconds} s, ${options.rate} req/s per IP ==`,
  );
  try {
    if (redis.status !== 'ready') await once(redis, 'ready');
    await markRateLimitEpoch(redis, keyPrefix);
    await migrate(admin, schema);
    sim = await startAllioSimulator({ token: BENCH_TOKEN, ratePerSecond: options.rate });
    const env: Env = { schema, keyPrefix, admin, sim, options };
    const fair = await fairShare(env);
    printFair(fair, options);
    const ips = await egressScaling(env);
    console.log(
      `  egress IPs           2 IPs / 1 IP = ${ips.ipRatio.toFixed(2)} (goal about 2), violations ${ips.ipViolations}`,
    );
    return { options, ...fair, ...ips };
  } finally {
    await sim?.close();
    await admin
      .raw(`drop schema if exists ${quoteIdent(schema)} cascade`)
      .catch((e: unknown) => console.error(`could not drop schema ${schema}:`, e));
    await admin.destroy();
    await deleteKeys(redis, keyPrefix).catch((e: unknown) =>
      console.error('could not delete Redis keys:', e),
    );
    await redis.quit().catch(() => redis.disconnect());
  }
}

type FairPart = Pick<
  FairnessResult,
  'rows' | 'webhooks' | 'lost' | 'requests' | 'seconds' | 'quotaUse' | 'violations'
>;

async function fairShare(env: Env): Promise<FairPart> {
  const { admin, sim, options } = env;
  const names = Array.from({ length: INTEGRATIONS }, (_, i) => (i === 0 ? 'bulk' : `client-${i}`));
  const its = await Promise.all(names.map((n) => addIntegration(admin, sim.url, n)));
  const bulk = its[0]!;
  await seedBacklog(admin, bulk.id, Math.ceil(options.bulkIds / MAX_IDS_PER_REQUEST), 1);
  const replicas = await startReplicas(env, [{ egressIp: 'default' }]);
  try {
    const t0 = await firstRequest(sim);
    // Webhooks in turn from the nine, 1-3 ids each, every 1/rate s.
    const others = its.slice(1);
    const every = 1000 / options.webhooksPerSecond;
    let sent = 0;
    const nextId = new Map(others.map((o) => [o.id, 1]));
    while (Date.now() - t0 < options.seconds * 1000) {
      const it = others[sent % others.length]!;
      const n = 1 + (sent % 3);
      const first = nextId.get(it.id)!;
      nextId.set(it.id, first + n);
      await admin('allio_webhook').insert({
        integration_id: it.id,
        integration_uuid: it.uuid,
        command: 'RESERVE_ADD',
        external_ids_array: JSON.stringify(Array.from({ length: n }, (_, k) => first + k)),
      });
      sent++;
      const due = t0 + sent * every;
      await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
    }
    const seconds = (Date.now() - t0) / 1000;
    const stats = sim.stats();
    // The last webhooks still on their way get a deadline, not a hang.
    await withDeadline(webhooksDone(admin), 60_000, 'the last webhooks to reach the CRM').catch(
      (e: unknown) => console.error(String(e)),
    );
    const { rows, all, lost } = await latencies(admin, its, names);
    return {
      rows,
      webhooks: all,
      lost,
      requests: stats.requests,
      seconds,
      quotaUse: stats.requests / (options.rate * seconds),
      violations: stats.violations,
    };
  } finally {
    await stopReplicas(replicas);
  }
}

type IpPart = Pick<FairnessResult, 'oneIp' | 'twoIps' | 'ipRatio' | 'ipViolations'>;

async function egressScaling(env: Env): Promise<IpPart> {
  const { admin, sim, options } = env;
  await admin('allio_tasks').whereNot({ status: 2 }).delete();
  const drain = async (
    groups: { egressIp: string; sourceAddress: string }[],
  ): Promise<{ perSecond: number; violations: number }> => {
    sim.reset();
    const it = await addIntegration(
      admin,
      sim.url,
      `drain-${groups.length}-${randomUUID().slice(0, 6)}`,
    );
    // Enough for the whole window with room to spare: the backlog never runs dry.
    await seedBacklog(
      admin,
      it.id,
      Math.ceil(options.rate * options.ipSeconds * groups.length * 1.5) + 10,
      1,
    );
    const replicas = await startReplicas(env, groups);
    try {
      const t0 = await firstRequest(sim);
      const from = sim.stats().recordsServed;
      await new Promise((r) => setTimeout(r, options.ipSeconds * 1000 - (Date.now() - t0)));
      const s = sim.stats();
      const perSecond = (s.recordsServed - from) / ((Date.now() - t0) / 1000);
      return { perSecond, violations: s.violations };
    } finally {
      await stopReplicas(replicas);
      await admin('allio_tasks').whereNot({ status: 2 }).delete();
    }
  };
  const one = await drain([{ egressIp: 'ip-a', sourceAddress: '127.0.0.2' }]);
  const two = await drain([
    { egressIp: 'ip-a', sourceAddress: '127.0.0.2' },
    { egressIp: 'ip-b', sourceAddress: '127.0.0.3' },
  ]);
  console.log(`  1 egress IP   ${fmt(one.perSecond, 1)} records/s`);
  console.log(`  2 egress IPs  ${fmt(two.perSecond, 1)} records/s`);
  return {
    oneIp: one.perSecond,
    twoIps: two.perSecond,
    ipRatio: two.perSecond / one.perSecond,
    ipViolations: one.violations + two.violations,
  };
}

async function startReplicas(
  env: Env,
  groups: { egressIp: string; sourceAddress?: string }[],
): Promise<Replica[]> {
  const logger = benchLogger();
  const replicas: Replica[] = [];
  const dbConfig = { DATABASE_URL, DATABASE_SCHEMA: env.schema, DATABASE_POOL_MAX: 5 };
  for (const [g, group] of groups.entries()) {
    const config = {
      ...loadConfig(allioEnv, {
        ALLIO_RATE_PER_SECOND: String(env.options.rate),
        OUTBOUND_ALLOW_HTTP: 'true',
        EGRESS_IP: group.egressIp,
        ...(group.sourceAddress ? { ALLIO_SOURCE_ADDRESS: group.sourceAddress } : {}),
      }),
      REDIS_KEY_PREFIX: env.keyPrefix,
    };
    for (let i = 0; i < REPLICAS_PER_IP; i++) {
      const db = createDb(dbConfig, { applicationName: `bench-fair-${g}-${i}` });
      const redis = createRedis({ REDIS_URL, REDIS_KEY_PREFIX: env.keyPrefix });
      const listener = new WorkListener(DATABASE_URL, env.schema, logger);
      const sync = createAllioSync({
        db,
        redis,
        config,
        logger,
        metrics: createMetrics(),
        listener,
        owner: `bench-${g}-${i}`,
        pollMaxMs: 1_000,
      });
      replicas.push({ db, redis, listener, sync });
    }
  }
  // No offline queue: a limiter call before the connection is ready would fail and back off.
  await withDeadline(
    Promise.all(
      replicas.map((r) => (r.redis.status === 'ready' ? undefined : once(r.redis, 'ready'))),
    ),
    10_000,
    'Redis',
  );
  for (const r of replicas) {
    await r.listener.start();
    await r.sync.start();
  }
  return replicas;
}

async function stopReplicas(replicas: readonly Replica[]): Promise<void> {
  await Promise.all(replicas.map((r) => r.sync.stop(5_000)));
  await Promise.all(replicas.map((r) => r.listener.stop()));
  await Promise.all(replicas.map((r) => r.db.destroy()));
  await Promise.all(replicas.map((r) => r.redis.quit().catch(() => r.redis.disconnect())));
}

/** When the simulator sees the first request (watched to 5 ms): the start of the measured window. */
async function firstRequest(sim: AllioSimulator): Promise<number> {
  return withDeadline(
    new Promise<number>((resolve) => {
      const watch = setInterval(() => {
        if (sim.stats().requests === 0) return;
        clearInterval(watch);
        resolve(Date.now());
      }, 5);
    }),
    30_000,
    'the first ALLIO request',
  );
}

async function seedBacklog(
  db: Db,
  integrationId: string,
  tasks: number,
  firstId: number,
): Promise<void> {
  await db.raw(
    `insert into allio_tasks (integration_id, entity, op, command, external_ids, next_attempt_at)
     select ?, 'reserve', 'upsert', 'RESERVE_MOD',
            (select json_agg(? + (t - 1) * ? + k - 1)::text from generate_series(1, ?) k),
            now() - interval '1 minute'
       from generate_series(1, ?) t`,
    [integrationId, firstId, MAX_IDS_PER_REQUEST, MAX_IDS_PER_REQUEST, tasks],
  );
}

async function webhooksDone(db: Db): Promise<void> {
  for (;;) {
    const { rows } = await db.raw<{ rows: { n: string }[] }>(
      `select count(*) as n from allio_webhook w
        where w.status in (0, 1) or exists (select 1 from allio_tasks t where t.webhook_id = w.id and t.status in (0, 1))`,
    );
    if (Number(rows[0]?.n ?? 0) === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Per integration: webhook commit → commit of its last task (the transaction that wrote its records). */
async function latencies(
  db: Db,
  its: { id: string }[],
  names: string[],
): Promise<{ rows: LatencyRow[]; all: LatencyRow; lost: number }> {
  const { rows } = await db.raw<{ rows: { integration_id: string; ms: number | null }[] }>(
    `select w.integration_id, extract(epoch from max(t.finished_at) - w.created_at) * 1000 as ms
       from allio_webhook w left join allio_tasks t on t.webhook_id = w.id and t.status = 2
      group by w.id`,
  );
  const byIt = new Map<string, number[]>();
  let lost = 0;
  for (const r of rows) {
    if (r.ms === null) lost++;
    else {
      byIt.set(String(r.integration_id), [
        ...(byIt.get(String(r.integration_id)) ?? []),
        Number(r.ms),
      ]);
    }
  }
  const { rows: served } = await db.raw<{ rows: { integration_id: string; n: string }[] }>(
    `select integration_id, count(*) as n from allio_tasks where status = 2 group by integration_id`,
  );
  const requests = new Map(served.map((r) => [String(r.integration_id), Number(r.n)]));
  const row = (integration: string, ms: number[], n: number): LatencyRow => {
    const s = [...ms].sort((a, b) => a - b);
    const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] ?? NaN;
    return {
      integration,
      webhooks: s.length,
      requests: n,
      p50: q(0.5),
      p99: q(0.99),
      max: s[s.length - 1] ?? NaN,
    };
  };
  const out = its.map((it, i) => row(names[i]!, byIt.get(it.id) ?? [], requests.get(it.id) ?? 0));
  const all = row(
    'all nine',
    its.slice(1).flatMap((it) => byIt.get(it.id) ?? []),
    out.slice(1).reduce((a, r) => a + r.requests, 0),
  );
  return { rows: out, all, lost };
}

function printFair(r: FairPart, options: FairnessOptions): void {
  const ms = (n: number) => (Number.isFinite(n) ? fmt(n) : '—');
  console.log(
    `  ${'integration'.padEnd(12)} ${'webhooks'.padStart(8)} ${'tasks done'.padStart(10)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)}`,
  );
  for (const row of [...r.rows, r.webhooks]) {
    console.log(
      `  ${row.integration.padEnd(12)} ${fmt(row.webhooks).padStart(8)} ${fmt(row.requests).padStart(10)} ` +
        `${ms(row.p50).padStart(8)} ${ms(row.p99).padStart(8)} ${ms(row.max).padStart(8)}`,
    );
  }
  console.log(`  webhooks lost        ${r.lost}`);
  console.log(`  webhook p99          ${ms(r.webhooks.p99)} ms (goal < 5,000)`);
  console.log(
    `  quota use            ${fmt(r.requests)} requests in ${fmt(r.seconds, 1)} s = ${r.quotaUse.toFixed(3)} of ${options.rate} req/s ` +
      `(goal >= 0.95)`,
  );
  console.log(`  violations (429)     ${r.violations} (goal 0)`);
}
