// The daily retention purge as periodic work: every replica of every worker service schedules the
// day's `hub.retention` row (ON CONFLICT DO NOTHING), one replica claims it under a lease and runs
// the purge; the others find nothing to claim. One log line per run with the counts.
import type { Knex } from 'knex';
import type { RetentionConfig } from '../config.js';
import { toError } from '../errors.js';
import type { WorkListener } from '../engine/notify.js';
import { dailyPeriod, PERIODIC_RUNS, PeriodicScheduler } from '../engine/periodic.js';
import { perRow } from '../engine/per-row.js';
import type { Reconciler } from '../engine/reconciler.js';
import { defineWorkReconciler } from '../engine/work-reconciler.js';
import type { WorkRow, WorkTable } from '../engine/work-table.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { purgeRules } from './policies.js';
import { purge, retentionMetrics, type PurgeResult } from './purge.js';

export const RETENTION_JOB = 'hub.retention';
/** The run's lease, renewed before every batch: a replica that dies mid-purge is replaced this late. */
const LEASE_MS = 5 * 60_000;

interface RetentionDeps {
  db: Knex;
  config: RetentionConfig;
  logger: Logger;
  metrics: Metrics;
  owner: string;
  listener?: WorkListener;
  now?: () => Date;
  schedulerIntervalMs?: number;
  pollMaxMs?: number;
}

interface Retention {
  scheduler: PeriodicScheduler;
  reconciler: Reconciler<WorkRow>;
  start(): Promise<void>;
  stop(timeoutMs?: number): Promise<void>;
}

export function createRetention(d: RetentionDeps): Retention {
  const { db, config, logger, metrics } = d;
  const log = logger.child({ job: RETENTION_JOB });
  const filter = { sql: 'name = ?', bindings: [RETENTION_JOB] };
  const { purged } = retentionMetrics(metrics.registry);
  const rules = purgeRules({
    doneDays: config.RETENTION_DAYS,
    failedDays: config.RETENTION_FAILED_DAYS,
    tableDays: config.RETENTION_TABLE_DAYS,
  });

  const handle = (runs: WorkTable) =>
    perRow<WorkRow>(runs, logger, {
      async handle(run, owner, signal) {
        const started = Date.now();
        const renew = async () =>
          (await db(PERIODIC_RUNS)
            .where({ id: run.id, locked_by: owner, status: 1 })
            .update({
              locked_until: db.raw('now() + make_interval(secs => ?)', [LEASE_MS / 1000]),
            })) > 0;
        let result: PurgeResult;
        try {
          result = await purge(db, rules, {
            batchSize: config.RETENTION_BATCH_SIZE,
            pauseMs: config.RETENTION_BATCH_PAUSE_MS,
            renew,
            signal,
            onBatch: (rule, n) => purged.inc({ table: rule.table }, n),
          });
        } catch (thrown) {
          log.error({ err: toError(thrown), run: run.id }, 'retention purge failed; it is retried');
          throw thrown;
        }
        const summary = {
          run: run.id,
          purged: result.purged,
          batches: result.batches,
          durationMs: Date.now() - started,
        };
        if (result.stopped === 'shutdown') {
          log.info(
            summary,
            'retention purge interrupted by shutdown; the run is resumed by the next replica',
          );
          await runs.release([run.id], owner);
        } else if (result.stopped === 'lease_lost') {
          log.warn(summary, 'retention purge lost its lease; another replica carries on');
        } else {
          await runs.complete([run.id], owner, db, {
            result: JSON.stringify(summary),
            finished_at: db.fn.now(),
          });
          log.info(summary, 'retention purge finished');
        }
      },
    });

  // hub_reconcile_backlog{reconciler="retention"}: a day's purge nobody runs trips HubBacklogStuck.
  const { reconciler } = defineWorkReconciler<WorkRow>({
    db,
    logger,
    metrics,
    owner: d.owner,
    listener: d.listener,
    table: PERIODIC_RUNS,
    name: 'retention',
    leaseMs: LEASE_MS,
    maxAttempts: 5,
    batch: 1,
    filter,
    // The purge renews the run's lease before every batch, and stops when it was lost.
    renewLeases: false,
    pollMaxMs: Math.max(d.pollMaxMs ?? 30_000, 1_000),
    handle,
  });
  const scheduler = new PeriodicScheduler(
    db,
    [{ name: RETENTION_JOB, period: (now) => dailyPeriod(now, config.RETENTION_TIME) }],
    logger,
    d.schedulerIntervalMs ?? 60_000,
    d.now,
  );
  return {
    scheduler,
    reconciler,
    async start() {
      if (!config.RETENTION_ENABLED) {
        log.info('retention purge disabled (RETENTION_ENABLED=false)');
        return;
      }
      await scheduler.tick();
      scheduler.start();
      reconciler.start();
    },
    async stop(timeoutMs) {
      await scheduler.stop();
      await reconciler.stop(timeoutMs);
    },
  };
}
