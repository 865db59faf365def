// Payment reconciler: charges each pending payment through the gateway with its idempotency key,
// then in one transaction records the outcome, moves the order (paid or payment_declined), queues
// production for a paid order and erases the card token.
import type { Knex } from 'knex';
import { PermanentError } from '../../core/errors.js';
import { afterCommit, type WorkRow, type WorkTable } from '../../core/engine/work-table.js';
import type { Logger } from '../../core/logger.js';
import type { KitchenMetrics } from './metrics.js';
import { transition } from './orders.js';
import { perRow } from '../../core/engine/per-row.js';
import { refusedBeforeSending } from '../../core/outbound.js';
import { refusedByGateway, type PaymentClient } from './payment-client.js';

export interface PaymentRow extends WorkRow {
  order_id: string;
  idempotency_key: string;
  card_token: string | null;
  amount_minor: string;
  currency: string;
}

/**
 * Whether a call that ended this way may still have charged the card (the gateway did not say no).
 * A redirect or an answer too large to read came after the request was sent: it may have charged.
 */
export function mayHaveCharged(reason: string): boolean {
  return !refusedByGateway(reason) && reason !== 'permanent' && !refusedBeforeSending(reason);
}

export function paymentHandler(d: {
  db: Knex;
  table: WorkTable;
  client: PaymentClient;
  logger: Logger;
  metrics: KitchenMetrics;
  productionDeadlineMs: number;
}) {
  const settle = async (p: PaymentRow, owner: string, signal: AbortSignal) => {
    if (!p.card_token) throw new PermanentError('payment has no card token left');
    const result = await d.client.process(
      {
        idempotencyKey: p.idempotency_key,
        orderId: p.order_id,
        amountMinor: Number(p.amount_minor),
        currency: p.currency,
        cardToken: p.card_token,
      },
      signal,
    );
    await d.db.transaction(async (trx) => {
      const done = await d.table.complete([p.id], owner, trx, {
        outcome: result.status,
        gateway_payment_id: result.paymentId,
        decline_code: result.declineCode ?? null,
        card_token: null,
        settled_at: trx.fn.now(),
        finished_at: trx.fn.now(),
      });
      if (done.length === 0) return;
      if (result.status === 'approved') {
        await transition(trx, p.order_id, 'paid', { set: { paid_at: trx.fn.now() } });
        await trx('kitchen_production')
          .insert({
            order_id: p.order_id,
            deadline_at: new Date(Date.now() + d.productionDeadlineMs),
          })
          .onConflict('order_id')
          .ignore();
      } else {
        await transition(trx, p.order_id, 'payment_declined', {
          reason: `card declined (${result.declineCode ?? 'no code'})`,
        });
      }
    });
    d.metrics.payments.inc({ outcome: result.status });
    d.logger.info({ orderId: p.order_id, outcome: result.status }, 'payment settled');
  };
  return perRow<PaymentRow>(d.table, d.logger, {
    warning: 'step did not complete',
    handle: settle,
    describe: (p) => ({ orderId: p.order_id }),
    async onFailed(p, outcome, trx) {
      // Out of attempts on timeouts or gateway errors, the charge may have gone through: the
      // failed order's refund asks the gateway and gives any charge back.
      const paymentOutcome = mayHaveCharged(outcome.reason) ? 'unknown' : 'failed';
      await trx('kitchen_payments')
        .where({ id: p.id })
        .update({ outcome: paymentOutcome, card_token: null });
      await transition(trx, p.order_id, 'failed', {
        reason: `payment could not be processed: ${outcome.reason}`,
      });
      afterCommit(trx, () => d.metrics.payments.inc({ outcome: 'failed' }));
    },
  });
}
