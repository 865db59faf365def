// Runs the purge rules batch by batch: each DELETE takes at most `batchSize` rows, a pause follows
// every full batch, and the caller's lease is renewed between batches so that a long purge is never
// taken over by another replica while it runs (and stops at once if it was).
import type { Knex } from 'knex';
import type { Counter } from 'prom-client';
import client from 'prom-client';
import type { Registry } from 'prom-client';
import { sleep } from '../sleep.js';
import { purgeBatchSql, type PurgeRule, type RetentionTable } from './policies.js';

interface PurgeOptions {
  batchSize: number;
  pauseMs: number;
  /** Renews the lease of the run; false when it is lost (another replica owns the run now). */
  renew?: () => Promise<boolean>;
  signal?: AbortSignal;
  /** Called after each DELETE with the rows it removed (metrics, tests). */
  onBatch?: (rule: PurgeRule, deleted: number) => void;
}

export interface PurgeResult {
  /** Rows deleted per table, done and failed together. */
  purged: Partial<Record<RetentionTable, number>>;
  batches: number;
  /** Why the run ended before every rule was done, if it did. */
  stopped?: 'lease_lost' | 'shutdown';
}

export async function purge(
  db: Knex,
  rules: readonly PurgeRule[],
  o: PurgeOptions,
): Promise<PurgeResult> {
  const result: PurgeResult = { purged: {}, batches: 0 };
  for (const rule of rules) {
    for (;;) {
      if (o.signal?.aborted) return { ...result, stopped: 'shutdown' };
      if (o.renew && !(await o.renew())) return { ...result, stopped: 'lease_lost' };
      const deleted = await db.raw<{ rowCount: number }>(purgeBatchSql(rule), [
        rule.days,
        o.batchSize,
        rule.days,
      ]);
      const n = deleted.rowCount ?? 0;
      result.batches++;
      result.purged[rule.table] = (result.purged[rule.table] ?? 0) + n;
      o.onBatch?.(rule, n);
      if (n < o.batchSize) break;
      await sleep(o.pauseMs, o.signal);
    }
  }
  return result;
}

/** `hub_retention_rows_purged_total{table}`, registered once per registry. */
export function retentionMetrics(registry: Registry): { purged: Counter<'table'> } {
  const name = 'hub_retention_rows_purged_total';
  return {
    purged:
      (registry.getSingleMetric(name) as Counter<'table'> | undefined) ??
      new client.Counter({
        name,
        help: 'Finished work rows deleted by the daily retention purge, by table.',
        labelNames: ['table'] as const,
        registers: [registry],
      }),
  };
}
