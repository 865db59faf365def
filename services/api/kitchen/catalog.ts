// Kitchen back-office routes: technology cards in and out as XML (schema-checked), and the current
// stock as the warehouse webhooks left it.
import type { FastifyInstance } from 'fastify';
import type { Knex } from 'knex';
import { z } from 'zod';
import { ApiError } from '../../core/http.js';
import {
  parseTechCard,
  techCardToXml,
  techCard,
  TechCardError,
} from '../../domains/kitchen/tech-card.js';
import { saveTechCard } from '../../domains/kitchen/orders.js';
import { needs } from '../../domains/kitchen/permissions.js';
import { parseOrThrow } from './validation.js';

const dishParams = z.object({
  dishId: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be a dish id'),
});

export function registerCatalogRoutes(app: FastifyInstance, d: { db: Knex }): void {
  app.put('/v1/kitchen/tech-cards/:dishId', needs('tech-cards:write'), async (req, reply) => {
    const { dishId } = parseOrThrow(dishParams, req.params, 'invalid_dish_id');
    if (typeof req.body !== 'string') {
      throw new ApiError(
        415,
        'xml_required',
        'Send the technology card as XML (Content-Type: application/xml).',
      );
    }
    let card;
    try {
      card = await parseTechCard(req.body);
    } catch (thrown) {
      if (thrown instanceof TechCardError) {
        throw new ApiError(422, 'invalid_tech_card', thrown.message, { problems: thrown.problems });
      }
      throw thrown;
    }
    if (card.dishId !== dishId) {
      throw new ApiError(
        422,
        'dish_id_mismatch',
        `The card is for dish ${card.dishId}; PUT it to /v1/kitchen/tech-cards/${card.dishId}.`,
      );
    }
    if (!(await saveTechCard(d.db, card, req.body))) {
      throw new ApiError(
        409,
        'stale_tech_card',
        `A newer version of the card for ${dishId} is stored; raise the version attribute.`,
      );
    }
    return reply.status(200).send({ dishId, version: card.version });
  });

  app.get('/v1/kitchen/tech-cards/:dishId', needs('tech-cards:read'), async (req, reply) => {
    const { dishId } = parseOrThrow(dishParams, req.params, 'invalid_dish_id');
    const row = await d
      .db('kitchen_dishes')
      .where({ id: dishId })
      .first<{ card: unknown } | undefined>();
    if (!row) throw new ApiError(404, 'dish_not_found', `No technology card for dish ${dishId}.`);
    return reply.type('application/xml').send(techCardToXml(techCard.parse(row.card)));
  });

  app.get('/v1/kitchen/stock', needs('stock:read'), async () => {
    const rows = await d.db('kitchen_stock').orderBy('ingredient');
    const now = Date.now();
    return {
      stock: rows.map(
        (r: {
          ingredient: string;
          quantity: string;
          reserved: string;
          unit: string;
          expires_at: Date | null;
          updated_at: Date;
        }) => ({
          ingredient: r.ingredient,
          quantity: Number(r.quantity),
          reserved: Number(r.reserved),
          available: Number(r.quantity) - Number(r.reserved),
          unit: r.unit,
          expiresAt: r.expires_at?.toISOString() ?? null,
          expired: r.expires_at ? r.expires_at.getTime() <= now : false,
          updatedAt: r.updated_at.toISOString(),
        }),
      ),
    };
  });
}
