// ALLIO sync throughput against the simulator: 4 allio-sync replicas sharing one Redis rate limiter
// drain a task backlog; records/s is compared with the quota's ceiling (2 req/s × 100 ids).
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { upsertIntegration } from '../services/domains/allio/integrations.js';
import { API_VERSION, allioIntegrationResource } from '../services/domains/allio/resource.js';
import { createAllioSync, type AllioSync } from '../services/allio-sync/service.js';
import { MAX_IDS_PER_REQUEST } from '../services/domains/allio/commands.js';
import { allioEnv, loadConfig } from '../services/core/config.js';
import { createDb, quoteIdent, type Db } from '../services/core/db.js';
import { migrate } from '../services/core/migrate.js';
import { createMetrics } from '../services/core/metrics.js';
import { markRateLimitEpoch } from '../services/core/ratelimit/limiter.js';
import { createRedis } from '../services/core/redis.js';
import { startAllioSimulator, type AllioSimulator } from '../services/simulators/allio/server.js';
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

const INSTANCES = 4;
const IDS_PER_TASK = 10;
/** The simulator's API token, which the benchmarks' integrations carry. */
export const BENCH_TOKEN = 'bench-token';

export interface AllioResult {
  records: number;
  tasks: number;
  failedTasks: number;
  requests: number;
  ms: number;
  recordsPerSecond: number;
  ceiling: number;
  /** recordsPerSecond / ceiling; the goal is >= 0.95. */
  ratio: number;
  /** The same with the last request's own slot added to the window (see below). */
  slotRatio: number;
  violations: number;
  maxInWindow: number;
}

interface Replica {
  db: Db;
  redis: Redis;
  sync: AllioSync;
}

export async function runAllioBench(): Promise<AllioResult> {
  // 6000 records at the 200 records/s ceiling is about 30 s.
  const wanted = envInt('BENCH_ALLIO_RECORDS', 6_000);
  const tasks = Math.ceil(wanted / IDS_PER_TASK);
  const records = tasks * IDS_PER_TASK;
  const schema = uniqueName('bench_allio');
  const keyPrefix = `bench:${schema}:`;
  const config = {
    ...loadConfig(allioEnv, { ALLIO_RATE_PER_SECOND: '2', OUTBOUND_ALLOW_HTTP: 'true' }),
    REDIS_KEY_PREFIX: keyPrefix,
  };
  const ceiling = config.ALLIO_RATE_PER_SECOND * MAX_IDS_PER_REQUEST;
  console.log(
    `\n== allio: ${fmt(records)} records in ${fmt(tasks)} tasks, ${INSTANCES} replicas × concurrency ` +
      `${config.ALLIO_WORKER_CONCURRENCY}, ${config.ALLIO_RATE_PER_SECOND} req/s, safety ${config.ALLIO_RATE_SAFETY_MS} ms ==`,
  );

  const logger = benchLogger();
  const dbConfig = { DATABASE_URL, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: 10 };
  const admin = createDb(dbConfig, { applicationName: 'bench-allio' });
  const cleanupRedis = createRedis({ REDIS_URL, REDIS_KEY_PREFIX: keyPrefix });
  if (cleanupRedis.status !== 'ready') await once(cleanupRedis, 'ready');
  await markRateLimitEpoch(cleanupRedis, keyPrefix);
  const replicas: Replica[] = [];
  let sim: AllioSimulator | undefined;
  try {
    await migrate(admin, schema);
    sim = await startAllioSimulator({
      token: BENCH_TOKEN,
      ratePerSecond: config.ALLIO_RATE_PER_SECOND,
    });
    const { id: integrationId } = await addIntegration(admin, sim.url);
    await admin.raw(
      `insert into allio_tasks (integration_id, entity, op, command, external_ids)
       select ?, 'reserve', 'upsert', 'RESERVE_ADD',
              (select json_agg((t - 1) * ? + k)::text from generate_series(1, ?) k)
         from generate_series(1, ?) t`,
      [integrationId, IDS_PER_TASK, IDS_PER_TASK, tasks],
    );

    // The first request is the start of the measured window, so the replicas' start-up is not counted.
    // Watched on the simulator (to 5 ms), since the replicas' requests go out on their own sockets.
    let firstRequestAt: number | undefined;
    const allio = sim;
    const watch = setInterval(() => {
      if (firstRequestAt === undefined && allio.stats().requests > 0) firstRequestAt = Date.now();
    }, 5);
    for (let i = 0; i < INSTANCES; i++) {
      const db = createDb(dbConfig, { applicationName: `bench-allio-${i}` });
      const redis = createRedis({ REDIS_URL, REDIS_KEY_PREFIX: keyPrefix });
      replicas.push({
        db,
        redis,
        sync: createAllioSync({
          db,
          redis,
          config,
          logger,
          metrics: createMetrics(),
          owner: `bench-${i}`,
          pollMaxMs: 1_000,
        }),
      });
    }
    // No offline queue: a limiter call before the connection is ready would fail and back off.
    await withDeadline(
      Promise.all([cleanupRedis, ...replicas.map((r) => r.redis)].map(ready)),
      10_000,
      'Redis',
    );
    await Promise.all(replicas.map((r) => r.sync.start()));

    const expectedMs = (records / ceiling) * 1000;
    try {
      await withDeadline(
        waitForTasks(admin, tasks),
        3 * expectedMs + 60_000,
        `${tasks} ALLIO tasks to finish`,
      );
    } finally {
      clearInterval(watch);
    }
    await Promise.all(replicas.map((r) => r.sync.stop(5_000)));

    const { rows } = await admin.raw<{ rows: { failed: string; last_ms: string | null }[] }>(
      `select count(*) filter (where status = 3) as failed,
              extract(epoch from max(finished_at)) * 1000 as last_ms
         from allio_tasks`,
    );
    const synced = Number(
      (
        await admin('crm_reservations')
          .where({ integration_id: integrationId })
          .count<{ n: string }[]>('* as n')
      )[0]?.n ?? 0,
    );
    const lastDoneAt = Number(rows[0]?.last_ms ?? NaN);
    if (firstRequestAt === undefined || !Number.isFinite(lastDoneAt)) {
      throw new Error('no ALLIO request was made');
    }
    const ms = lastDoneAt - firstRequestAt;
    const stats = sim.stats();
    const recordsPerSecond = (synced * 1000) / ms;
    // N requests span only N-1 of their spacings, so the first-to-last window flatters the rate by
    // N/(N-1); adding one spacing (a window after an answer, shared by the window's requests) gives
    // the sustained rate.
    const slotMs = (1000 + config.ALLIO_RATE_SAFETY_MS) / config.ALLIO_RATE_PER_SECOND;
    const slotRatio = (synced * 1000) / (ms + slotMs) / ceiling;
    const result: AllioResult = {
      records: synced,
      tasks,
      failedTasks: Number(rows[0]?.failed ?? 0),
      requests: stats.requests,
      ms,
      recordsPerSecond,
      ceiling,
      ratio: recordsPerSecond / ceiling,
      slotRatio,
      violations: stats.violations,
      maxInWindow: stats.maxInWindow,
    };
    console.log(
      `  records synced       ${fmt(synced)} of ${fmt(records)} (${result.failedTasks} tasks failed)`,
    );
    console.log(`  ALLIO requests       ${fmt(stats.requests)} (${fmt(stats.served)} served)`);
    console.log(`  first request → last task done  ${fmt(ms / 1000, 2)} s`);
    console.log(`  records/s            ${fmt(recordsPerSecond, 1)} (ceiling ${fmt(ceiling)})`);
    console.log(
      `  ratio                ${result.ratio.toFixed(3)} (goal >= 0.95; ` +
        `${slotRatio.toFixed(3)} counting the last request's ${fmt(slotMs)} ms slot)`,
    );
    console.log(
      `  violations (429)     ${stats.violations} (goal 0), maxInWindow ${stats.maxInWindow}`,
    );
    return result;
  } finally {
    await Promise.all(replicas.map((r) => r.sync.stop(1_000)));
    await Promise.all(replicas.map((r) => r.db.destroy()));
    await Promise.all(replicas.map((r) => r.redis.quit().catch(() => r.redis.disconnect())));
    await sim?.close();
    await admin.raw(`drop schema if exists ${quoteIdent(schema)} cascade`).catch((e: unknown) => {
      console.error(`could not drop schema ${schema}:`, e);
    });
    await admin.destroy();
    await deleteKeys(cleanupRedis, keyPrefix).catch((e: unknown) =>
      console.error('could not delete Redis keys:', e),
    );
    await cleanupRedis.quit().catch(() => cleanupRedis.disconnect());
  }
}

/** An integration row as `hub apply` would create it (same path as test/support/allio.ts). */
export async function addIntegration(
  db: Db,
  baseUrl: string,
  name = 'bench',
): Promise<{ id: string; uuid: string }> {
  const uuid = randomUUID();
  const resource = allioIntegrationResource.parse({
    apiVersion: API_VERSION,
    kind: 'AllioIntegration',
    metadata: { name: `${name}-${randomUUID().slice(0, 8)}` },
    spec: {
      integrationUuid: uuid,
      webhookKey: `wh_${randomUUID().replace(/-/g, '')}`,
      apiBaseUrl: baseUrl,
      apiToken: BENCH_TOKEN,
    },
  });
  return { id: (await upsertIntegration(db, resource)).id, uuid };
}

/** Polls until every task is done or failed; a 100 ms poll is noise next to a 30 s run. */
async function waitForTasks(db: Db, tasks: number): Promise<void> {
  for (;;) {
    const { rows } = await db.raw<{ rows: { n: string }[] }>(
      'select count(*) as n from allio_tasks where status in (2, 3)',
    );
    if (Number(rows[0]?.n ?? 0) >= tasks) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function ready(redis: Redis): Promise<void> {
  if (redis.status !== 'ready') await once(redis, 'ready');
}
