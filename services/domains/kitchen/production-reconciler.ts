// Production reconciler: a paid order is sent to the robots (phase `submit`, a
// 5 s timeout and 3 retries with exponential backoff, keyed by the order id so no retry cooks
// twice), then its status is polled (phase `monitor`) until done, when the ingredients are written
// off from the technology cards and the order is produced. Failures are kept and visible.
import type { Knex } from 'knex';
import {
  afterCommit,
  heldBy,
  Status,
  type WorkRow,
  type WorkTable,
} from '../../core/engine/work-table.js';
import type { Logger } from '../../core/logger.js';
import type { KitchenMetrics } from './metrics.js';
import { loadCards, recordProductionStatus, transition, type OrderRow } from './orders.js';
import { perRow } from '../../core/engine/per-row.js';
import type { ProductionRequest, RobotsClient } from './robots-client.js';
import type { TechCard } from './tech-card.js';
import { consumeStock } from './stock.js';
import { requirements } from './write-off.js';

export interface ProductionRow extends WorkRow {
  order_id: string;
  phase: 'submit' | 'monitor';
  robot_order_id: string | null;
  deadline_at: Date | null;
}

interface ProductionDeps {
  db: Knex;
  table: WorkTable;
  client: RobotsClient;
  logger: Logger;
  metrics: KitchenMetrics;
  pollMs: number;
}

/** The robots' request from the order and its dishes' cards (pure). */
function productionRequest(
  order: Pick<OrderRow, 'id' | 'items'>,
  cards: ReadonlyMap<string, TechCard>,
): ProductionRequest {
  return {
    orderId: order.id,
    items: order.items.map((i) => {
      const card = cards.get(i.dishId);
      if (!card) throw new Error(`no technology card for dish ${i.dishId}`);
      return {
        dishId: i.dishId,
        name: card.name,
        quantity: i.quantity,
        program: card.cooking.program,
        temperatureC: card.cooking.temperatureC,
        durationSec: card.cooking.durationSec,
        ingredients: card.ingredients.map((g) => ({ code: g.code, unit: g.unit, net: g.net })),
      };
    }),
  };
}

export function productionHandler(d: ProductionDeps) {
  const log = d.logger.child({ reconciler: d.table.reconciler });

  /** Back to the queue for the next status poll; attempts restart so only consecutive errors count. */
  const schedulePoll = (
    trx: Knex | Knex.Transaction,
    id: string,
    owner: string,
    set: Record<string, Knex.Value>,
  ) =>
    trx('kitchen_production')
      .where({ id })
      .where(heldBy(owner))
      .update({
        ...set,
        status: Status.NEW,
        attempts: 0,
        locked_by: null,
        locked_until: null,
        last_error: null,
        next_attempt_at: new Date(Date.now() + d.pollMs),
        updated_at: trx.fn.now(),
      });

  // The order's reason is read by the tenant, so it is the hub's own sentence; what the robots said
  // (free text of a partner) stays in kitchen_production.last_error for operators.
  const failOrder = async (
    row: ProductionRow,
    owner: string,
    reason: string,
    detail: string,
    productionStatus?: 'failed',
  ) => {
    await d.db.transaction(async (trx) => {
      const n = await trx('kitchen_production')
        .where({ id: row.id })
        .where(heldBy(owner))
        .update({
          status: Status.ERROR,
          locked_by: null,
          locked_until: null,
          last_error: detail.slice(0, 500),
          updated_at: trx.fn.now(),
        });
      if (n > 0) {
        await transition(trx, row.order_id, 'failed', {
          reason,
          ...(productionStatus ? { set: { production_status: productionStatus } } : {}),
        });
      }
    });
    d.metrics.productions.inc({ outcome: 'failed' });
  };

  const produced = async (row: ProductionRow, owner: string, order: OrderRow) => {
    const cards = await loadCards(
      d.db,
      order.items.map((i) => i.dishId),
    );
    const writeOffs = requirements(order.items, cards);
    await d.db.transaction(async (trx) => {
      const done = await d.table.complete([row.id], owner, trx, {
        robot_status: 'done',
        finished_at: trx.fn.now(),
      });
      if (done.length === 0) return;
      if (
        !(await transition(trx, row.order_id, 'produced', {
          set: { produced_at: trx.fn.now(), production_status: 'done' },
        }))
      ) {
        return;
      }
      for (const w of writeOffs) {
        await trx('kitchen_write_offs')
          .insert({
            order_id: row.order_id,
            ingredient: w.ingredient,
            quantity: w.quantity,
            unit: w.unit,
          })
          .onConflict(['order_id', 'ingredient'])
          .ignore();
      }
      await consumeStock(trx, row.order_id, writeOffs);
    });
    d.metrics.productions.inc({ outcome: 'produced' });
    log.info({ orderId: row.order_id, writeOffs: writeOffs.length }, 'order produced');
  };

  const handleOne = async (row: ProductionRow, owner: string, signal: AbortSignal) => {
    const order = await d
      .db('kitchen_orders')
      .where({ id: row.order_id })
      .first<OrderRow | undefined>();
    if (!order) throw new Error(`order ${row.order_id} is gone`);
    if (row.phase === 'submit') {
      const cards = await loadCards(
        d.db,
        order.items.map((i) => i.dishId),
      );
      const accepted = await d.client.submit(productionRequest(order, cards), signal);
      await d.db.transaction(async (trx) => {
        const n = await schedulePoll(trx, row.id, owner, {
          phase: 'monitor',
          robot_order_id: accepted.productionId,
          robot_status: accepted.status,
        });
        if (n > 0) {
          await transition(trx, row.order_id, 'in_production', {
            set: { production_status: accepted.status },
          });
        }
      });
      log.info(
        { orderId: row.order_id, productionId: accepted.productionId, attempt: row.attempts },
        'order sent to the robots',
      );
      return;
    }
    const s = await d.client.status(row.robot_order_id ?? '', signal);
    if (s.status === 'done') return produced(row, owner, order);
    if (s.status === 'failed') {
      return failOrder(
        row,
        owner,
        'the robots could not cook it',
        `the robots reported: ${s.reason ?? 'no reason given'}`,
        'failed',
      );
    }
    if (row.deadline_at && row.deadline_at.getTime() < Date.now()) {
      return failOrder(
        row,
        owner,
        'cooking took longer than allowed',
        `deadline ${row.deadline_at.toISOString()} passed`,
      );
    }
    // Queued or cooking: a change reaches the tenant as a status event of the order in production.
    await d.db.transaction(async (trx) => {
      const n = await schedulePoll(trx, row.id, owner, { robot_status: s.status });
      if (n > 0 && (await recordProductionStatus(trx, row.order_id, s.status))) {
        log.debug(
          { orderId: row.order_id, productionStatus: s.status },
          'production status changed',
        );
      }
    });
  };

  return perRow<ProductionRow>(d.table, d.logger, {
    warning: 'step did not complete',
    handle: handleOne,
    describe: (row) => ({ orderId: row.order_id, phase: row.phase }),
    async onFailed(row, _outcome, trx) {
      const what =
        row.phase === 'submit'
          ? `sending to the robots failed after ${row.attempts} attempts`
          : 'the production status could not be read';
      // The partner's answer is already the production row's last_error.
      await transition(trx, row.order_id, 'failed', { reason: what });
      afterCommit(trx, () => d.metrics.productions.inc({ outcome: 'failed' }));
    },
  });
}
