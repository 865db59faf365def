// The daily retention purge as periodic work: every replica of every worker service schedules the
// day's `hub.retention` row (ON CONFLICT DO NOTHING), one replica claims it under a lease and runs
// the purge; the others find nothing to claim. One log line per run with the counts.
import type { Knex } from 'knex';
import type { RetentionConfig } from '../config.js';
import { toError } from '../errors.js';
import type { WorkListener } from '../engine/notify.js';
import { dailyPeriod, PERIODIC_RUNS, PeriodicScheduler } from '../engine/periodic.js';
import { Reconciler } from '../engine/reconciler.js';
import { WorkTable, type WorkRow } from '../engine/work-table.js';
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
  const runs = new WorkTable(db, metrics, logger, { table: PERIODIC_RUNS, reconciler: 'retention', leaseMs: LEASE_MS, maxAttempts: 5 });
  const filter = { sql: 'name = ?', bindings: [RETENTION_JOB] };
  const { purged } = retentionMetrics(metrics.registry);
  const rules = purgeRules({ doneDays: config.RETENTION_DAYS, failedDays: config.RETENTION_FAILED_DAYS, tableDays: config.RETENTION_TABLE_DAYS });

  const handle = async (batch: WorkRow[], owner: string, signal: AbortSignal): Promise<void> => {
    for (const run of batch) {
      const started = Date.now();
      const renew = async () =>
        (await db(PERIODIC_RUNS).where({ id: run.id, locked_by: owner, status: 1 })
          .update({ locked_until: db.raw('now() + make_interval(secs => ?)', [LEASE_MS / 1000]) })) > 0;
      let result: PurgeResult;
      try {
        result = await purge(db, rules, {
          batchSize: config.RETENTION_BATCH_SIZE, pauseMs: config.RETENTION_BATCH_PAUSE_MS, renew, signal,
          onBatch: (rule, n) => purged.inc({ table: rule.table }, n),
        });
      } catch (thrown) {
        log.error({ err: toError(thrown), run: run.id }, 'retention purge failed; it is retried');
        await runs.settleError([run], owner, thrown);
        continue;
      }
      const summary = { run: run.id, purged: result.purged, batches: result.batches, durationMs: Date.now() - started };
      if (result.stopped === 'shutdown') {
        log.info(summary, 'retention purge interrupted by shutdown; the run is resumed by the next replica');
        await runs.release([run.id], owner);
      } else if (result.stopped === 'lease_lost') {
        log.warn(summary, 'retention purge lost its lease; another replica carries on');
      } else {
        await runs.complete([run.id], owner, db, { result: JSON.stringify(summary), finished_at: db.fn.now() });
        log.info(summary, 'retention purge finished');
      }
    }
  };

  const reconciler = new Reconciler<WorkRow>({
    name: 'retention', owner: d.owner, logger, metrics,
    pollMaxMs: Math.max(d.pollMaxMs ?? 30_000, 1_000),
    claim: (owner) => runs.claim(owner, 1, filter),
    handle,
    onHandlerError: (b, owner, err) => runs.settleError(b, owner, err).then(() => undefined),
    // hub_reconcile_backlog{reconciler="retention"}: a day's purge nobody runs trips HubBacklogStuck.
    stats: () => runs.stats(filter),
  });
  const scheduler = new PeriodicScheduler(
    db, [{ name: RETENTION_JOB, period: (now) => dailyPeriod(now, config.RETENTION_TIME) }], logger,
    d.schedulerIntervalMs ?? 60_000, d.now,
  );
  d.listener?.on(PERIODIC_RUNS, () => reconciler.notify());
  return {
    scheduler, reconciler,
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
