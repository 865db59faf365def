// Order persistence: the guarded state transition (which also queues the status event, and the
// refund of a charged order that fails, in the same transaction), and the menu's technology cards.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { allowedFrom, keepsReason, type OrderState } from './order-state.js';
import { queueRefund } from './refunds.js';
import { techCard, type TechCard } from './tech-card.js';
import { releaseStock } from './stock.js';

export interface OrderRow {
  id: string;
  tenant_id: string;
  state: OrderState;
  items: { dishId: string; name: string; quantity: number; priceMinor: number }[];
  total_minor: string;
  currency: string;
  reason: string | null;
  created_at: Date;
  updated_at: Date;
  paid_at: Date | null;
  produced_at: Date | null;
  refunded_at: Date | null;
  /** Incremented by every change (bigint, read as a string). */
  version: string;
  /** The robots' status of its production once submitted: queued, cooking, done, failed. */
  production_status: string | null;
}

/** What a status event carries of the order, as the change left it. */
const EVENT_COLUMNS = ['tenant_id', 'state', 'reason', 'version', 'production_status'];
type EventColumns = Pick<
  OrderRow,
  'tenant_id' | 'state' | 'reason' | 'version' | 'production_status'
>;

/** Queues the order's status event in the transaction of the change. */
async function queueStatusEvent(
  trx: Knex.Transaction,
  orderId: string,
  row: EventColumns,
): Promise<void> {
  await trx('kitchen_outbox').insert({
    event_id: randomUUID(),
    order_id: orderId,
    tenant_id: row.tenant_id,
    state: row.state,
    reason: row.reason,
    version: row.version,
    production_status: row.production_status,
  });
}

/**
 * Moves an order to `to` if its current state allows it, increments its version and queues the
 * status event (and, for a charged order that fails, its refund); returns false (and changes
 * nothing) when the order is already there or elsewhere, which makes every caller idempotent.
 */
export async function transition(
  trx: Knex.Transaction,
  orderId: string,
  to: OrderState,
  o: { reason?: string; set?: Record<string, Knex.Value> } = {},
): Promise<boolean> {
  const reason = o.reason ?? (keepsReason(to) ? trx.raw('??', ['reason']) : null);
  const rows = await trx('kitchen_orders')
    .where({ id: orderId })
    .whereIn('state', allowedFrom(to))
    .update({
      state: to,
      reason,
      version: trx.raw('version + 1'),
      updated_at: trx.fn.now(),
      ...o.set,
    })
    .returning(EVENT_COLUMNS);
  const row = rows[0] as EventColumns | undefined;
  if (!row) return false;
  // A declined or failed order no longer holds stock (it reserves again if paid again).
  if (to === 'payment_declined' || to === 'failed') await releaseStock(trx, orderId);
  if (to === 'failed') await queueRefund(trx, orderId, row.reason ?? 'the order failed');
  await queueStatusEvent(trx, orderId, row);
  return true;
}

/**
 * Records the robots' new status of an order in production and queues its status event (state
 * unchanged, version one more); false, changing nothing, when the order already has that status
 * or is no longer in production.
 */
export async function recordProductionStatus(
  trx: Knex.Transaction,
  orderId: string,
  status: string,
): Promise<boolean> {
  const rows = await trx('kitchen_orders')
    .where({ id: orderId, state: 'in_production' })
    .andWhereRaw('production_status is distinct from ?', [status])
    .update({
      production_status: status,
      version: trx.raw('version + 1'),
      updated_at: trx.fn.now(),
    })
    .returning(EVENT_COLUMNS);
  const row = rows[0] as EventColumns | undefined;
  if (!row) return false;
  await queueStatusEvent(trx, orderId, row);
  return true;
}

export async function loadCards(
  db: Knex,
  dishIds: readonly string[],
): Promise<Map<string, TechCard>> {
  const rows = await db('kitchen_dishes')
    .whereIn('id', dishIds as string[])
    .andWhere({ active: true })
    .select('id', 'card');
  return new Map(rows.map((r: { id: string; card: unknown }) => [r.id, techCard.parse(r.card)]));
}

/** Stores a dish from its card; false (nothing written) when a newer version is already stored. */
export async function saveTechCard(db: Knex, card: TechCard, xml: string): Promise<boolean> {
  const row = {
    id: card.dishId,
    name: card.name,
    price_minor: card.price.minor,
    currency: card.price.currency,
    card: JSON.stringify(card),
    card_xml: xml,
    card_version: card.version,
    active: true,
    updated_at: db.fn.now(),
  };
  // Production systems may resend stale cards; the version decides.
  const saved = await db('kitchen_dishes')
    .insert(row)
    .onConflict('id')
    .merge()
    .where('kitchen_dishes.card_version', '<=', card.version)
    .returning('id');
  return saved.length > 0;
}
