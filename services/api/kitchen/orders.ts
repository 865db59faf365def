// Tenant order routes: the menu, placing an order (refused with the reason when an ingredient is out
// of stock or expired), paying it with a gateway card token, and following it.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Knex } from 'knex';
import { z } from 'zod';
import { callerOf, tenantOf } from '../../core/auth/rbac.js';
import { ApiError } from '../../core/http.js';
import { boundedArray } from '../../core/validation.js';
import { loadCards, transition, type OrderRow } from '../../domains/kitchen/orders.js';
import { loadAvailableStock, reserveStock } from '../../domains/kitchen/stock.js';
import { requirements, shortages, type Shortage } from '../../domains/kitchen/write-off.js';
import { needs } from '../../domains/kitchen/permissions.js';
import { parseOrThrow } from './validation.js';

const orderBody = z
  .object({
    items: boundedArray(
      z
        .object({
          dishId: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be a dish id from the menu'),
          quantity: z.number().int().min(1).max(20),
        })
        .strict(),
      {
        min: 1,
        tooFew: 'must list at least one dish',
        max: 20,
        tooMany: 'must list at most 20 dishes',
      },
    ),
  })
  .strict();

const payBody = z
  .object({
    cardToken: z
      .string()
      .regex(
        /^tok_[A-Za-z0-9_]{8,128}$/,
        "must be the payment gateway's card token (tok_…), never card data",
      ),
  })
  .strict();

const orderParams = z.object({ orderId: z.string().uuid('must be an order id (UUID)') });
const idempotencyKey = z
  .string()
  .min(8)
  .max(200)
  .regex(/^[\x21-\x7e]+$/)
  .optional();

function presentOrder(o: OrderRow) {
  return {
    orderId: o.id,
    state: o.state,
    reason: o.reason,
    items: o.items,
    totalMinor: Number(o.total_minor),
    currency: o.currency,
    createdAt: o.created_at.toISOString(),
    updatedAt: o.updated_at.toISOString(),
    paidAt: o.paid_at?.toISOString() ?? null,
    producedAt: o.produced_at?.toISOString() ?? null,
    refundedAt: o.refunded_at?.toISOString() ?? null,
    version: Number(o.version),
    productionStatus: o.production_status,
  };
}

function describeShortage(s: Shortage): string {
  if (s.reason === 'out_of_stock') {
    return `${s.ingredient} is out of stock (${s.available} of ${s.needed} ${s.unit})`;
  }
  if (s.reason === 'expired') return `${s.ingredient} expired at ${s.expiresAt}`;
  return `${s.ingredient} is stocked in ${s.stocked}, the card needs ${s.needed}`;
}

export function registerOrderRoutes(app: FastifyInstance, d: { db: Knex }): void {
  const findOrder = async (req: FastifyRequest): Promise<OrderRow> => {
    const { orderId } = parseOrThrow(orderParams, req.params, 'invalid_order_id');
    const caller = callerOf(req);
    const q = d.db('kitchen_orders').where({ id: orderId });
    if (caller.kind === 'tenant') q.andWhere({ tenant_id: caller.tenantId });
    const order = await q.first<OrderRow | undefined>();
    if (!order) {
      throw new ApiError(404, 'order_not_found', 'No order with this id is visible to you.');
    }
    return order;
  };

  app.get('/v1/kitchen/menu', needs('menu:read'), async () => {
    const rows = await d.db('kitchen_dishes').where({ active: true }).orderBy('id');
    return {
      dishes: rows.map(
        (r: {
          id: string;
          name: string;
          price_minor: string;
          currency: string;
          card_version: number;
        }) => ({
          dishId: r.id,
          name: r.name,
          priceMinor: Number(r.price_minor),
          currency: r.currency,
          cardVersion: r.card_version,
        }),
      ),
    };
  });

  app.post('/v1/kitchen/orders', needs('orders:create'), async (req, reply) => {
    const tenantId = tenantOf(req, 'Placing an order');
    const key = parseOrThrow(
      idempotencyKey,
      req.headers['idempotency-key'],
      'invalid_idempotency_key',
    );
    const body = parseOrThrow(orderBody, req.body, 'invalid_body');
    if (key) {
      const existing = await d
        .db('kitchen_orders')
        .where({ tenant_id: tenantId, idempotency_key: key })
        .first<OrderRow | undefined>();
      if (existing) return reply.status(200).send({ order: presentOrder(existing) });
    }
    const dishIds = [...new Set(body.items.map((i) => i.dishId))];
    const cards = await loadCards(d.db, dishIds);
    const unknown = dishIds.filter((id) => !cards.has(id));
    if (unknown.length > 0) {
      throw new ApiError(
        422,
        'unknown_dish',
        `These dishes are not on the menu: ${unknown.join(', ')}.`,
        { dishes: unknown },
      );
    }
    const needed = requirements(body.items, cards);
    const missing = shortages(
      needed,
      await loadAvailableStock(
        d.db,
        needed.map((n) => n.ingredient),
      ),
      new Date(),
    );
    if (missing.length > 0) {
      throw new ApiError(
        409,
        'ingredients_unavailable',
        `The kitchen cannot cook this order: ${missing.map(describeShortage).join('; ')}.`,
        { shortages: missing },
      );
    }
    const items = body.items.map((i) => {
      const card = cards.get(i.dishId);
      return {
        dishId: i.dishId,
        name: card?.name ?? i.dishId,
        quantity: i.quantity,
        priceMinor: card?.price.minor ?? 0,
      };
    });
    const currencies = new Set(dishIds.map((id) => cards.get(id)?.price.currency));
    if (currencies.size > 1) {
      throw new ApiError(
        422,
        'mixed_currencies',
        'Dishes priced in different currencies cannot be in one order.',
      );
    }
    const [row] = await d
      .db('kitchen_orders')
      .insert({
        id: randomUUID(),
        tenant_id: tenantId,
        state: 'awaiting_payment',
        items: JSON.stringify(items),
        total_minor: items.reduce((s, i) => s + i.priceMinor * i.quantity, 0),
        currency: [...currencies][0],
        idempotency_key: key ?? null,
      })
      .onConflict(['tenant_id', 'idempotency_key'])
      .merge(['updated_at'])
      .returning('*');
    return reply.status(201).send({ order: presentOrder(row as OrderRow) });
  });

  app.post('/v1/kitchen/orders/:orderId/payment', needs('orders:pay'), async (req, reply) => {
    tenantOf(req, 'Paying an order');
    const order = await findOrder(req);
    const body = parseOrThrow(payBody, req.body, 'invalid_body');
    const cards = await loadCards(
      d.db,
      order.items.map((i) => i.dishId),
    );
    const gone = order.items.filter((i) => !cards.has(i.dishId)).map((i) => i.dishId);
    if (gone.length > 0) {
      throw new ApiError(
        409,
        'dish_unavailable',
        `These dishes were taken off the menu: ${gone.join(', ')}; place a new order.`,
        { dishes: gone },
      );
    }
    const needed = requirements(order.items, cards);
    const accepted = await d.db.transaction(async (trx) => {
      if (!(await transition(trx, order.id, 'payment_pending'))) return false;
      // Paying holds the ingredients; another order may have taken them since this one was placed.
      const missing = await reserveStock(trx, order.id, needed, new Date());
      if (missing.length > 0) {
        throw new ApiError(
          409,
          'ingredients_unavailable',
          `The kitchen can no longer cook this order: ${missing.map(describeShortage).join('; ')}. Nothing was charged.`,
          { shortages: missing },
        );
      }
      await trx('kitchen_payments').insert({
        order_id: order.id,
        idempotency_key: randomUUID(),
        card_token: body.cardToken,
        amount_minor: order.total_minor,
        currency: order.currency,
      });
      return true;
    });
    if (!accepted) {
      const now = await findOrder(req);
      throw new ApiError(
        409,
        now.state === 'payment_pending' ? 'payment_in_progress' : 'order_not_payable',
        now.state === 'payment_pending'
          ? 'A payment for this order is being processed; follow the order status.'
          : `The order is ${now.state}; only an unpaid or declined order can be paid.`,
      );
    }
    return reply.status(202).send({ order: presentOrder(await findOrder(req)) });
  });

  app.get('/v1/kitchen/orders/:orderId', needs('orders:read'), async (req) => ({
    order: presentOrder(await findOrder(req)),
  }));

  app.get('/v1/kitchen/orders', needs('orders:read'), async (req) => {
    const caller = callerOf(req);
    const q = d.db('kitchen_orders').orderBy('created_at', 'desc').limit(100);
    if (caller.kind === 'tenant') q.where({ tenant_id: caller.tenantId });
    return { orders: ((await q) as OrderRow[]).map(presentOrder) };
  });
}
