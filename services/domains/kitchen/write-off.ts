// Ingredient arithmetic from technology cards: what an order needs from stock (gross amounts times
// portions), and whether the stock can serve it. Pure: the stock is passed in.
import type { TechCard } from './tech-card.js';

interface OrderLine {
  dishId: string;
  quantity: number;
}

export interface Requirement {
  ingredient: string;
  unit: string;
  quantity: number;
}

/** Sums gross amounts per ingredient; rounded to 3 decimals like the card (no float dust in 1C). */
export function requirements(
  lines: readonly OrderLine[],
  cards: ReadonlyMap<string, TechCard>,
): Requirement[] {
  const sum = new Map<string, Requirement>();
  for (const line of lines) {
    const card = cards.get(line.dishId);
    if (!card) throw new Error(`no technology card for dish ${line.dishId}`);
    for (const i of card.ingredients) {
      const r = sum.get(i.code) ?? { ingredient: i.code, unit: i.unit, quantity: 0 };
      r.quantity = Math.round((r.quantity + i.gross * line.quantity) * 1000) / 1000;
      sum.set(i.code, r);
    }
  }
  return [...sum.values()].sort((a, b) => a.ingredient.localeCompare(b.ingredient));
}

export interface StockLevel {
  ingredient: string;
  quantity: number;
  unit: string;
  expiresAt: Date | null;
}

export type Shortage =
  | { ingredient: string; reason: 'out_of_stock'; needed: number; available: number; unit: string }
  | { ingredient: string; reason: 'expired'; expiresAt: string }
  | { ingredient: string; reason: 'unit_mismatch'; needed: string; stocked: string };

/** Every ingredient the stock cannot serve, with the reason; empty when the order can be cooked. */
export function shortages(
  needed: readonly Requirement[],
  stock: ReadonlyMap<string, StockLevel>,
  now: Date,
): Shortage[] {
  const out: Shortage[] = [];
  for (const r of needed) {
    const s = stock.get(r.ingredient);
    if (!s || s.quantity < r.quantity) {
      out.push({
        ingredient: r.ingredient,
        reason: 'out_of_stock',
        needed: r.quantity,
        available: s?.quantity ?? 0,
        unit: r.unit,
      });
    } else if (s.unit !== r.unit) {
      out.push({
        ingredient: r.ingredient,
        reason: 'unit_mismatch',
        needed: r.unit,
        stocked: s.unit,
      });
    } else if (s.expiresAt && s.expiresAt.getTime() <= now.getTime()) {
      out.push({
        ingredient: r.ingredient,
        reason: 'expired',
        expiresAt: s.expiresAt.toISOString(),
      });
    }
  }
  return out;
}
