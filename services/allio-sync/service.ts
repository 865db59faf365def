// The allio-sync service: three reconcilers (webhooks → tasks, the rate-limited sync worker, the
// daily deletion sweep) and the scheduler that creates the daily sweep row.
import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import type { AllioConfig } from '../core/config.js';
import { PeriodicScheduler, PERIODIC_RUNS } from '../core/engine/periodic.js';
import { Reconciler } from '../core/engine/reconciler.js';
import { WorkTable } from '../core/engine/work-table.js';
import type { WorkListener } from '../core/engine/notify.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { OutboundPolicy } from '../core/outbound.js';
import { RateLimiter } from '../core/ratelimit/limiter.js';
import { AllioClient, allioLimit } from '../domains/allio/client.js';
import { DELETION_JOB, deletionJob, deletionSweepHandler } from '../domains/allio/deletion-sweep.js';
import { fairClaim } from '../domains/allio/fair-claim.js';
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
  const leaseMs = config.ALLIO_TASK_LEASE_MS;
  const webhooks = new WorkTable(db, metrics, logger, {
    table: 'allio_webhook', reconciler: 'allio-webhooks', leaseMs, maxAttempts: 10,
  });
  const tasks = new WorkTable(db, metrics, logger, {
    table: 'allio_tasks', reconciler: 'allio-sync', leaseMs, maxAttempts: config.ALLIO_MAX_ATTEMPTS,
  });
  const runs = new WorkTable(db, metrics, logger, {
    table: PERIODIC_RUNS, reconciler: 'allio-deletion-sweep', leaseMs: 10 * leaseMs, maxAttempts: 5,
  });
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
  const fair = fairClaim(tasks, client);
  const common = { owner: d.owner, logger, metrics, pollMaxMs: d.pollMaxMs ?? 5_000 };
  const upsertFilter = { sql: `op = 'upsert'`, bindings: [] };
  const sweepFilter = { sql: 'name = ?', bindings: [DELETION_JOB] };

  const webhookReconciler = new Reconciler<WebhookRow>({
    ...common,
    name: 'allio-webhooks',
    claim: (owner) => webhooks.claim<WebhookRow>(owner, 50),
    handle: webhookHandler(db, webhooks, logger),
    onHandlerError: (batch, owner, err) => webhooks.settleError(batch, owner, err).then(() => undefined),
    lease: webhooks.renewal(),
    stats: () => webhooks.stats(),
  });
  const syncReconciler = new Reconciler<TaskRow>({
    ...common,
    name: 'allio-sync',
    concurrency: config.ALLIO_WORKER_CONCURRENCY,
    claim: fair.claim,
    handle: syncHandler({ db, table: tasks, client, metrics, logger, secretsDir: config.SECRETS_DIR, takeSlot: fair.takeSlot }),
    onHandlerError: (batch, owner, err) => tasks.settleError(batch, owner, err).then(() => undefined),
    lease: tasks.renewal(),
    stats: () => tasks.stats(upsertFilter),
  });
  const sweepReconciler = new Reconciler({
    ...common,
    name: 'allio-deletion-sweep',
    pollMaxMs: Math.max(common.pollMaxMs, 30_000),
    claim: (owner) => runs.claim(owner, 1, sweepFilter),
    handle: deletionSweepHandler(db, runs, metrics, logger),
    lease: runs.renewal(),
    stats: () => runs.stats(sweepFilter),
  });
  const scheduler = new PeriodicScheduler(
    db, [deletionJob(config.ALLIO_DELETION_TIME)], logger, d.schedulerIntervalMs ?? 60_000, d.now,
  );
  const reconcilers = [webhookReconciler, syncReconciler, sweepReconciler] as Reconciler<unknown>[];

  d.listener?.on('allio_webhook', () => webhookReconciler.notify());
  d.listener?.on('allio_tasks', () => syncReconciler.notify());
  d.listener?.on(PERIODIC_RUNS, () => sweepReconciler.notify());

  return {
    reconcilers,
    scheduler,
    tables: { webhooks, tasks, runs },
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
