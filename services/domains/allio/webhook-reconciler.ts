// Webhooks → tasks: claims stored webhooks, plans their tasks (pure), inserts them and marks the
// webhook processed in one transaction. A pending task with the same ids is not inserted twice.
import type { Knex } from 'knex';
import { PermanentError } from '../../core/errors.js';
import { perRow } from '../../core/engine/per-row.js';
import type { WorkRow, WorkTable } from '../../core/engine/work-table.js';
import type { Logger } from '../../core/logger.js';
import { planTasks } from './commands.js';

export interface WebhookRow extends WorkRow {
  integration_id: string;
  command: string;
  external_ids_array: string;
  /** The webhook request's id: the correlation id of everything it causes. */
  request_id: string | null;
}

export function webhookHandler(db: Knex, table: WorkTable, logger: Logger) {
  return perRow<WebhookRow>(table, logger, {
    warning: 'webhook not planned into tasks yet',
    describe: (webhook) => ({
      webhookId: webhook.id,
      correlationId: webhook.request_id,
      command: webhook.command,
    }),
    async handle(webhook, owner) {
      let plan: ReturnType<typeof planTasks>;
      try {
        plan = planTasks(webhook.command, webhook.external_ids_array);
      } catch (cause) {
        throw new PermanentError('stored external_ids_array is not valid JSON', { cause });
      }
      await db.transaction(async (trx) => {
        if ('skip' in plan) {
          await table.complete([webhook.id], owner, trx, {
            skip_reason: plan.skip,
            processed_at: trx.fn.now(),
          });
          logger.info(
            {
              webhookId: webhook.id,
              correlationId: webhook.request_id,
              command: webhook.command,
              reason: plan.skip,
            },
            'webhook skipped',
          );
          return;
        }
        // Marked processed first, under the lease: a worker that lost it plans nothing.
        const done = await table.complete([webhook.id], owner, trx, { processed_at: trx.fn.now() });
        if (done.length === 0) return;
        for (const t of plan.tasks) {
          await trx.raw(
            `insert into allio_tasks (integration_id, webhook_id, command, entity, op, external_ids)
             select ?, ?, ?, ?, ?, ?
              where not exists (select 1 from allio_tasks where integration_id = ? and command = ?
                                   and external_ids = ? and status = 0)`,
            [
              webhook.integration_id,
              webhook.id,
              t.command,
              t.entity,
              t.op,
              t.external_ids,
              webhook.integration_id,
              t.command,
              t.external_ids,
            ],
          );
        }
        logger.debug(
          { webhookId: webhook.id, correlationId: webhook.request_id, tasks: plan.tasks.length },
          'webhook planned into tasks',
        );
      });
    },
  });
}
