// Daily deletion control: once a day, for each active
// integration, pending *_DEL tasks soft-delete their entities when the integration enables deletion
// control, and are completed as skipped, with the reason, when it does not.
import type { Knex } from 'knex';
import { dailyPeriod, type PeriodicJob } from '../../core/engine/periodic.js';
import { perRow } from '../../core/engine/per-row.js';
import type { WorkRow, WorkTable } from '../../core/engine/work-table.js';
import type { Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import { parseIds, type Entity } from './commands.js';
import { softDelete } from './crm-writer.js';

export const DELETION_JOB = 'allio.deletion-sweep';
export const SKIP_DISABLED = 'deletion control is disabled for this integration';

export function deletionJob(timeOfDay: string): PeriodicJob {
  return { name: DELETION_JOB, period: (now) => dailyPeriod(now, timeOfDay) };
}

interface SweepResult {
  integrations: number;
  tasks: number;
  deleted: number;
  skipped: number;
}

/** Runs the sweep over every active integration; each integration is one transaction. */
async function runDeletionSweep(db: Knex, metrics: Metrics, logger: Logger): Promise<SweepResult> {
  const result: SweepResult = { integrations: 0, tasks: 0, deleted: 0, skipped: 0 };
  const integrations: { id: string; name: string; deletion_control: boolean }[] = await db(
    'allio_integrations',
  )
    .where({ active: true })
    .select('id', 'name', 'deletion_control');
  for (const integration of integrations) {
    await db.transaction(async (trx) => {
      const tasks: { id: string; entity: Entity; external_ids: string }[] = await trx('allio_tasks')
        .where({ integration_id: integration.id, op: 'delete', status: 0 })
        .select('id', 'entity', 'external_ids')
        .forUpdate()
        .skipLocked();
      if (tasks.length === 0) return;
      result.integrations++;
      result.tasks += tasks.length;
      if (integration.deletion_control) {
        for (const entity of ['reserve', 'dealcard'] as const) {
          const ids = [
            ...new Set(
              tasks.filter((t) => t.entity === entity).flatMap((t) => parseIds(t.external_ids)),
            ),
          ];
          const n = await softDelete(trx, integration.id, entity, ids.map(String));
          result.deleted += n;
          if (n > 0) metrics.allioDeleted.inc({ entity }, n);
        }
      } else {
        result.skipped += tasks.length;
      }
      await trx('allio_tasks')
        .whereIn(
          'id',
          tasks.map((t) => t.id),
        )
        .update({
          status: 2,
          attempts: trx.raw('attempts + 1'),
          skip_reason: integration.deletion_control ? null : SKIP_DISABLED,
          finished_at: trx.fn.now(),
          updated_at: trx.fn.now(),
        });
      logger.info(
        {
          integration: integration.name,
          tasks: tasks.length,
          deletionControl: integration.deletion_control,
        },
        'deletion sweep applied',
      );
    });
  }
  return result;
}

export function deletionSweepHandler(db: Knex, table: WorkTable, metrics: Metrics, logger: Logger) {
  return perRow<WorkRow>(table, logger, {
    async handle(run, owner) {
      const result = await runDeletionSweep(db, metrics, logger);
      await table.complete([run.id], owner, db, {
        result: JSON.stringify(result),
        finished_at: db.fn.now(),
      });
    },
  });
}
