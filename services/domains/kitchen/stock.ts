// Stock held by orders: what an order needs is reserved under row locks when the tenant pays, so
// two orders can never both count on the same last portion; it is consumed when the order is
// produced and released when the payment is declined or the order fails.
import type { Knex } from 'knex';
import { shortages, type Requirement, type Shortage, type StockLevel } from './write-off.js';

interface StockRow {
  ingredient: string;
  quantity: string;
  reserved: string;
  unit: string;
  expires_at: Date | null;
}

/** What is left to promise: the stock less what orders hold. */
function available(r: StockRow): StockLevel {
  return {
    ingredient: r.ingredient,
    quantity: Number(r.quantity) - Number(r.reserved),
    unit: r.unit,
    expiresAt: r.expires_at,
  };
}

export async function loadAvailableStock(
  db: Knex,
  ingredients: readonly string[],
): Promise<Map<string, StockLevel>> {
  const rows: StockRow[] = await db('kitchen_stock').whereIn('ingredient', ingredients as string[]);
  return new Map(rows.map((r) => [r.ingredient, available(r)]));
}

/**
 * Reserves `needed` for the order, or returns what is short and reserves nothing. The stock rows
 * are locked in ingredient order, so concurrent reservations queue instead of deadlocking. An order
 * that already holds its reservation is left as it is.
 */
export async function reserveStock(
  trx: Knex.Transaction,
  orderId: string,
  needed: readonly Requirement[],
  now: Date,
): Promise<Shortage[]> {
  if (await trx('kitchen_stock_reservations').where({ order_id: orderId }).first()) return [];
  const rows: StockRow[] = await trx('kitchen_stock')
    .whereIn(
      'ingredient',
      needed.map((n) => n.ingredient),
    )
    .orderBy('ingredient')
    .forUpdate();
  const missing = shortages(needed, new Map(rows.map((r) => [r.ingredient, available(r)])), now);
  if (missing.length > 0) return missing;
  for (const n of needed) {
    await trx('kitchen_stock_reservations').insert({
      order_id: orderId,
      ingredient: n.ingredient,
      quantity: n.quantity,
    });
    await trx('kitchen_stock')
      .where({ ingredient: n.ingredient })
      .increment('reserved', n.quantity);
  }
  return [];
}

/** Gives the order's reservation back to the stock (declined payment, failed order). */
export async function releaseStock(trx: Knex.Transaction, orderId: string): Promise<void> {
  const held: { ingredient: string; quantity: string }[] = await trx('kitchen_stock_reservations')
    .where({ order_id: orderId })
    .orderBy('ingredient')
    .del()
    .returning(['ingredient', 'quantity']);
  for (const h of held) {
    await trx('kitchen_stock')
      .where({ ingredient: h.ingredient })
      .update({
        reserved: trx.raw('greatest(reserved - ?, 0)', [Number(h.quantity)]),
        updated_at: trx.fn.now(),
      });
  }
}

/** Takes what the order used out of the stock and ends its reservation (the order was produced). */
export async function consumeStock(
  trx: Knex.Transaction,
  orderId: string,
  used: readonly Requirement[],
): Promise<void> {
  await releaseStock(trx, orderId);
  for (const u of [...used].sort((a, b) => a.ingredient.localeCompare(b.ingredient))) {
    await trx('kitchen_stock')
      .where({ ingredient: u.ingredient })
      .update({
        quantity: trx.raw('greatest(quantity - ?, 0)', [u.quantity]),
        updated_at: trx.fn.now(),
      });
  }
}
