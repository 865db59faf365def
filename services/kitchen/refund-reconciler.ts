// Refund reconciler: gives the money of a charged order that failed back through the gateway under
// the order's refund key, then in one transaction records the refund and moves the order from
// failed to refunded. A refund the gateway refuses (4xx) stays failed and visible with its answer.
import type { Knex } from 'knex';
import type { WorkRow, WorkTable } from '../core/engine/work-table.js';
import type { Logger } from '../core/logger.js';
import type { KitchenMetrics } from './metrics.js';
import { transition } from './orders.js';
import type { PaymentClient } from './payment-client.js';
import { perRow } from './per-row.js';

export interface RefundRow extends WorkRow {
  order_id: string;
  idempotency_key: string;
  gateway_payment_id: string;
  amount_minor: string;
  currency: string;
  reason: string;
}

/** How a refund ended for good without money going back: the gateway said no, or never answered. */
export function unrefundedOutcome(failure: { reason: string }): 'refused' | 'failed' {
  return failure.reason.startsWith('http_4') ? 'refused' : 'failed';
}

export function refundHandler(d: { db: Knex; table: WorkTable; client: PaymentClient; logger: Logger; metrics: KitchenMetrics }) {
  const refund = async (r: RefundRow, owner: string, signal: AbortSignal) => {
    const result = await d.client.refund(
      { idempotencyKey: r.idempotency_key, paymentId: r.gateway_payment_id, amountMinor: Number(r.amount_minor), currency: r.currency, reason: r.reason },
      signal,
    );
    const recorded = await d.db.transaction(async (trx) => {
      const done = await d.table.complete([r.id], owner, trx, {
        outcome: 'refunded', gateway_refund_id: result.refundId, refunded_at: trx.fn.now(), finished_at: trx.fn.now(),
      });
      if (done.length === 0) return false;
      await transition(trx, r.order_id, 'refunded', { set: { refunded_at: trx.fn.now() } });
      return true;
    });
    if (!recorded) return;
    d.metrics.refunds.inc({ outcome: 'refunded' });
    d.logger.info({ orderId: r.order_id, refundId: result.refundId, attempt: r.attempts }, 'order refunded');
  };
  return perRow<RefundRow>(d.table, d.logger, {
    handle: refund,
    describe: (r) => ({ orderId: r.order_id }),
    async onFailed(r, failure) {
      const outcome = unrefundedOutcome(failure);
      await d.db('kitchen_refunds').where({ id: r.id }).update({ outcome });
      d.metrics.refunds.inc({ outcome });
      d.logger.error({ orderId: r.order_id, outcome, error: failure.error }, 'refund not made; the order stays failed');
    },
  });
}
