// The allio-sync service: three reconcilers (webhooks → tasks, the rate-limited sync worker, the
// daily deletion sweep) and the scheduler that creates the daily sweep row.
import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import type { AllioConfig } from '../core/config.js';
import { PeriodicScheduler, PERIODIC_RUNS } from '../core/engine/periodic.js';
import type { Reconciler } from '../core/engine/reconciler.js';
import { defineWorkReconciler } from '../core/engine/work-reconciler.js';
import type { WorkTable } from '../core/engine/work-table.js';
import type { WorkListener } from '../core/engine/notify.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { OutboundPolicy } from '../core/outbound.js';
import { RateLimiter } from '../core/ratelimit/limiter.js';
import { AllioClient, allioLimit } from '../domains/allio/client.js';
import {
  DELETION_JOB,
  deletionJob,
  deletionSweepHandler,
} from '../domains/allio/deletion-sweep.js';
import { fairClaim, type FairClaim } from '../domains/allio/fair-claim.js';
import { syncHandler, type TaskRow } from '../domains/allio/sync-worker.js';
import { webhookHandler, type WebhookRow } from '../domains/allio/webhook-reconciler.js';

export interface AllioSyncDeps {
  db: Knex;
  redis: Redis;
  config: AllioConfig & { REDIS_KEY_PREFIX: string };
  logger: Logger;
  metrics: Metrics;
  /** Wakes the reconcilers on inserts; without it they poll. */
  listener?: WorkListener;
  /** Names this replica in leases. */
  owner: string;
  /** Clock for the scheduler (tests move it). */
  now?: () => Date;
  pollMaxMs?: number;
  schedulerIntervalMs?: number;
}

export interface AllioSync {
  reconcilers: Reconciler<unknown>[];
  scheduler: PeriodicScheduler;
  tables: { webhooks: WorkTable; tasks: WorkTable; runs: WorkTable };
  start(): Promise<void>;
  stop(timeoutMs?: number): Promise<void>;
}

export function createAllioSync(d: AllioSyncDeps): AllioSync {
  const { db, metrics, logger, config } = d;
  const limiter = new RateLimiter(d.redis, config.REDIS_KEY_PREFIX, metrics, logger);
  const client = new AllioClient({
    limiter,
    limit: allioLimit(config),
    egressIp: config.EGRESS_IP,
    timeoutMs: config.ALLIO_HTTP_TIMEOUT_MS,
    metrics,
    outbound: new OutboundPolicy(config, logger, metrics),
    sourceAddress: config.ALLIO_SOURCE_ADDRESS,
  });
  const leaseMs = config.ALLIO_TASK_LEASE_MS;
  const common = {
    db,
    logger,
    metrics,
    owner: d.owner,
    listener: d.listener,
    pollMaxMs: d.pollMaxMs ?? 5_000,
  };

  const webhooks = defineWorkReconciler<WebhookRow>({
    ...common,
    table: 'allio_webhook',
    name: 'allio-webhooks',
    leaseMs,
    maxAttempts: 10,
    batch: 50,
    handle: (table) => webhookHandler(db, table, logger),
  });
  // The sync worker claims through the fair share of the quota, and its first request uses the slot
  // the claim took.
  let fair: FairClaim | undefined;
  const fairOf = (table: WorkTable) => (fair ??= fairClaim(table, client));
  const sync = defineWorkReconciler<TaskRow>({
    ...common,
    table: 'allio_tasks',
    name: 'allio-sync',
    leaseMs,
    maxAttempts: config.ALLIO_MAX_ATTEMPTS,
    concurrency: config.ALLIO_WORKER_CONCURRENCY,
    filter: { sql: `op = 'upsert'`, bindings: [] },
    claim: (table) => fairOf(table).claim,
    handle: (table) =>
      syncHandler({
        db,
        table,
        client,
        metrics,
        logger,
        secretsDir: config.SECRETS_DIR,
        takeSlot: fairOf(table).takeSlot,
      }),
  });
  const sweep = defineWorkReconciler({
    ...common,
    table: PERIODIC_RUNS,
    name: 'allio-deletion-sweep',
    leaseMs: 10 * leaseMs,
    maxAttempts: 5,
    batch: 1,
    filter: { sql: 'name = ?', bindings: [DELETION_JOB] },
    pollMaxMs: Math.max(common.pollMaxMs, 30_000),
    handle: (table) => deletionSweepHandler(db, table, metrics, logger),
  });
  const scheduler = new PeriodicScheduler(
    db,
    [deletionJob(config.ALLIO_DELETION_TIME)],
    logger,
    d.schedulerIntervalMs ?? 60_000,
    d.now,
  );
  const reconcilers = [
    webhooks.reconciler,
    sync.reconciler,
    sweep.reconciler,
  ] as Reconciler<unknown>[];

  return {
    reconcilers,
    scheduler,
    tables: { webhooks: webhooks.table, tasks: sync.table, runs: sweep.table },
    async start() {
      await scheduler.tick();
      scheduler.start();
      for (const r of reconcilers) r.start();
    },
    async stop(timeoutMs) {
      const stopping = reconcilers.map((r) => r.stop(timeoutMs));
      // Calls still waiting for a slot (or for Redis) have sent nothing: they end now and their
      // tasks are handed back; requests already sent are waited for.
      limiter.close();
      await scheduler.stop();
      await Promise.all(stopping);
      client.close();
    },
  };
}
