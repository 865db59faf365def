// The order state machine as data: which state may follow which. Every transition in the database
// goes through `allowedFrom`, so applying the same change twice is a no-op rather than an error.
// A failed order whose payment was approved is refunded; one that was never charged stays failed.
import { ORDER_STATES, type OrderState } from '../../contracts/tenant-events.js';

// The states are published: tenants see them in `order.status` events and over REST.
export { ORDER_STATES, type OrderState };

const TRANSITIONS: Record<OrderState, readonly OrderState[]> = {
  awaiting_payment: ['payment_pending'],
  payment_pending: ['paid', 'payment_declined', 'failed'],
  // The tenant may try another card after a decline.
  payment_declined: ['payment_pending'],
  paid: ['in_production', 'failed'],
  in_production: ['produced', 'failed'],
  produced: [],
  failed: ['refunded'],
  refunded: [],
};

/** States that keep the reason of the state before them: a refunded order still says why it failed. */
const KEEPS_REASON: readonly OrderState[] = ['refunded'];

export function keepsReason(to: OrderState): boolean {
  return KEEPS_REASON.includes(to);
}

/** The states an order may be in for `to` to be applied. */
export function allowedFrom(to: OrderState): OrderState[] {
  return ORDER_STATES.filter((s) => TRANSITIONS[s].includes(to));
}
