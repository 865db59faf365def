// Refund reconciler: gives the money of a charged order that failed back through the gateway under
// the order's refund key, then in one transaction records the refund and moves the order from
// failed to refunded. A refund the gateway refuses (4xx) stays failed and visible with its answer.
// When the payment's outcome is unknown (its attempts ran out without an answer), the gateway is
// asked for the order's charges first: none approved ends the refund as `not_charged`.
import type { Knex } from 'knex';
import { afterCommit, heldBy, type WorkRow, type WorkTable } from '../../core/engine/work-table.js';
import type { Logger } from '../../core/logger.js';
import type { KitchenMetrics } from './metrics.js';
import { transition } from './orders.js';
import { refusedByGateway, type PaymentClient } from './payment-client.js';
import { perRow } from '../../core/engine/per-row.js';

export interface RefundRow extends WorkRow {
  order_id: string;
  idempotency_key: string;
  /** Null while the payment's outcome is unknown. */
  gateway_payment_id: string | null;
  amount_minor: string;
  currency: string;
  reason: string;
}

/** How a refund ended for good without money going back: the gateway said no, or never answered. */
export function unrefundedOutcome(failure: { reason: string }): 'refused' | 'failed' {
  return refusedByGateway(failure.reason) ? 'refused' : 'failed';
}

export function refundHandler(d: {
  db: Knex;
  table: WorkTable;
  client: PaymentClient;
  logger: Logger;
  metrics: KitchenMetrics;
}) {
  /** Settles an unknown payment from the gateway's charges of the order; the approved one's id, or null (finished as not charged). */
  const settleUnknownPayment = async (
    r: RefundRow,
    owner: string,
    signal: AbortSignal,
  ): Promise<string | null> => {
    const approved = (await d.client.findPayments(r.order_id, signal)).filter(
      (p) => p.status === 'approved',
    );
    const charge = approved[0];
    if (approved.length > 1) {
      d.logger.warn(
        { orderId: r.order_id, charges: approved.map((p) => p.paymentId) },
        'the gateway holds several approved charges of one order; refunding the first',
      );
    }
    const notCharged = await d.db.transaction(async (trx) => {
      if (!charge) {
        return (
          (
            await d.table.complete([r.id], owner, trx, {
              outcome: 'not_charged',
              finished_at: trx.fn.now(),
            })
          ).length > 0
        );
      }
      const held = await trx('kitchen_refunds')
        .where({ id: r.id })
        .where(heldBy(owner))
        .update({ gateway_payment_id: charge.paymentId, updated_at: trx.fn.now() });
      if (held === 0) return false;
      await trx('kitchen_payments').where({ order_id: r.order_id, outcome: 'unknown' }).update({
        outcome: 'approved',
        gateway_payment_id: charge.paymentId,
        settled_at: trx.fn.now(),
      });
      return false;
    });
    if (notCharged) d.metrics.refunds.inc({ outcome: 'not_charged' });
    d.logger.info(
      { orderId: r.order_id, charged: Boolean(charge) },
      'payment of unknown outcome settled from the gateway',
    );
    return charge?.paymentId ?? null;
  };

  const refund = async (r: RefundRow, owner: string, signal: AbortSignal) => {
    const paymentId = r.gateway_payment_id ?? (await settleUnknownPayment(r, owner, signal));
    if (!paymentId) return;
    const result = await d.client.refund(
      {
        idempotencyKey: r.idempotency_key,
        paymentId,
        amountMinor: Number(r.amount_minor),
        currency: r.currency,
        reason: r.reason,
      },
      signal,
    );
    const recorded = await d.db.transaction(async (trx) => {
      const done = await d.table.complete([r.id], owner, trx, {
        outcome: 'refunded',
        gateway_refund_id: result.refundId,
        refunded_at: trx.fn.now(),
        finished_at: trx.fn.now(),
      });
      if (done.length === 0) return false;
      await transition(trx, r.order_id, 'refunded', { set: { refunded_at: trx.fn.now() } });
      return true;
    });
    if (!recorded) return;
    d.metrics.refunds.inc({ outcome: 'refunded' });
    d.logger.info(
      { orderId: r.order_id, refundId: result.refundId, attempt: r.attempts },
      'order refunded',
    );
  };
  return perRow<RefundRow>(d.table, d.logger, {
    warning: 'step did not complete',
    handle: refund,
    describe: (r) => ({ orderId: r.order_id }),
    async onFailed(r, failure, trx) {
      const outcome = unrefundedOutcome(failure);
      await trx('kitchen_refunds').where({ id: r.id }).update({ outcome });
      afterCommit(trx, () => {
        d.metrics.refunds.inc({ outcome });
        d.logger.error(
          { orderId: r.order_id, outcome, error: failure.error },
          'refund not made; the order stays failed',
        );
      });
    },
  });
}
