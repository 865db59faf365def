// Warehouse webhook payloads (Standard Webhooks shape `{type, timestamp, data}`) and how each one
// changes the stock. Levels are absolute and the newest wins; receipts add; expiry dates replace.
import type { Knex } from 'knex';
import { z } from 'zod';
import { perRow } from '../../core/engine/per-row.js';
import type { WorkRow, WorkTable } from '../../core/engine/work-table.js';
import type { Logger } from '../../core/logger.js';
import type { KitchenMetrics } from './metrics.js';

const ingredient = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be an ingredient code such as beet');
const unit = z.enum(['g', 'ml', 'pcs']);
const at = z.string().datetime({ offset: true });

export const warehouseEvent = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('stock.level'),
    timestamp: at,
    data: z.object({
      ingredient,
      quantity: z.number().nonnegative(),
      unit,
      expiresAt: at.nullable().optional(),
    }),
  }),
  z.object({
    type: z.literal('stock.receipt'),
    timestamp: at,
    data: z.object({
      ingredient,
      quantity: z.number().positive(),
      unit,
      expiresAt: at.nullable().optional(),
    }),
  }),
  z.object({
    type: z.literal('stock.expiry'),
    timestamp: at,
    data: z.object({ ingredient, expiresAt: at }),
  }),
]);
type WarehouseEvent = z.infer<typeof warehouseEvent>;

export interface WarehouseEventRow extends WorkRow {
  webhook_id: string;
  type: string;
  payload: unknown;
  occurred_at: Date;
}

export async function applyEvent(trx: Knex.Transaction, e: WarehouseEvent): Promise<void> {
  const source = new Date(e.timestamp);
  switch (e.type) {
    case 'stock.level':
      await trx.raw(
        `insert into kitchen_stock (ingredient, quantity, unit, expires_at, source_at) values (?, ?, ?, ?, ?)
         on conflict (ingredient) do update set quantity = excluded.quantity, unit = excluded.unit,
           expires_at = excluded.expires_at, source_at = excluded.source_at, updated_at = now()
         where kitchen_stock.source_at <= excluded.source_at`,
        [e.data.ingredient, e.data.quantity, e.data.unit, e.data.expiresAt ?? null, source],
      );
      return;
    case 'stock.receipt':
      // The stock's expiry is the earliest of what is on hand.
      await trx.raw(
        `insert into kitchen_stock (ingredient, quantity, unit, expires_at, source_at) values (?, ?, ?, ?, ?)
         on conflict (ingredient) do update set quantity = kitchen_stock.quantity + excluded.quantity,
           expires_at = case when kitchen_stock.quantity > 0 and kitchen_stock.expires_at is not null
                             then least(kitchen_stock.expires_at, excluded.expires_at) else excluded.expires_at end,
           updated_at = now()`,
        [e.data.ingredient, e.data.quantity, e.data.unit, e.data.expiresAt ?? null, source],
      );
      return;
    case 'stock.expiry':
      await trx('kitchen_stock')
        .where({ ingredient: e.data.ingredient })
        .update({ expires_at: new Date(e.data.expiresAt), updated_at: trx.fn.now() });
      return;
  }
}

/** The warehouse event applier: each stored event changes the stock once, in its own transaction. */
export function warehouseHandler(d: {
  db: Knex;
  table: WorkTable;
  logger: Logger;
  metrics: KitchenMetrics;
}) {
  return perRow<WarehouseEventRow>(d.table, d.logger, {
    warning: 'warehouse event not applied yet',
    describe: (row) => ({ webhookId: row.webhook_id }),
    async handle(row, owner) {
      const parsed = warehouseEvent.safeParse(row.payload);
      if (!parsed.success) {
        await d.table.fail(
          [row.id],
          owner,
          `not a warehouse event: ${parsed.error.issues[0]?.message ?? ''}`,
        );
        return;
      }
      await d.db.transaction(async (trx) => {
        const done = await d.table.complete([row.id], owner, trx, { finished_at: trx.fn.now() });
        if (done.length > 0) await applyEvent(trx, parsed.data);
      });
      d.metrics.warehouseEvents.inc({ type: parsed.data.type });
    },
  });
}
