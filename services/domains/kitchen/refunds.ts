// Refunds of charged orders that failed: queued in the transaction that fails the order, for the
// full approved amount, under a key derived from the order so no retry refunds twice.
import type { Knex } from 'knex';

/** The gateway's Idempotency-Key of an order's refund: the same on every attempt and replica. */
const refundKey = (orderId: string): string => `refund:${orderId}`;

/** The longest reason sent to the gateway with a refund. */
const REASON_MAX = 500;

/**
 * Queues the refund of the order's approved payment, or of a payment whose outcome is unknown (the
 * refund first asks the gateway whether it charged); nothing when the order was never charged or
 * its refund is already queued.
 */
export async function queueRefund(
  trx: Knex.Transaction,
  orderId: string,
  reason: string,
): Promise<boolean> {
  const { rowCount } = await trx.raw<{ rowCount: number }>(
    `insert into kitchen_refunds (order_id, idempotency_key, gateway_payment_id, amount_minor, currency, reason)
     select order_id, ?, gateway_payment_id, amount_minor, currency, ?
       from kitchen_payments
      where order_id = ? and (outcome = 'approved' and gateway_payment_id is not null or outcome = 'unknown')
     on conflict (order_id) do nothing`,
    [refundKey(orderId), reason.slice(0, REASON_MAX), orderId],
  );
  return rowCount > 0;
}
