// ALLIO webhook intake (seed 004 §4.1): find the integration by the URL key, check the body's uuid
// against it, store the webhook and answer 200 only after the commit. Any rejection stores nothing.
import type { FastifyInstance } from 'fastify';
import type { Knex } from 'knex';
import { z } from 'zod';
import { ApiError } from '../core/http.js';
import type { Metrics } from '../core/metrics.js';
import { findByWebhookKey } from '../allio-sync/integrations.js';

export const allioWebhookBody = z
  .object({
    uuid: z.string().uuid('must be the integration UUID'),
    command: z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/, 'must be an upper-case ALLIO command such as RESERVE_ADD'),
    indexes: z
      .array(
        z.union([
          z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
          z.string().regex(/^[1-9]\d{0,15}$/).transform(Number),
        ]),
        { invalid_type_error: 'must be an array of ids' },
      )
      .max(10_000, 'carries more than 10000 ids')
      .default([]),
  })
  .passthrough();

const params = z.object({ webhookKey: z.string().min(1).max(128).regex(/^[A-Za-z0-9_-]+$/) });

export function registerAllioWebhook(app: FastifyInstance, deps: { db: Knex; metrics: Metrics }): void {
  const reject = (status: number, code: string, message: string, details?: unknown): never => {
    deps.metrics.webhooks.inc({ source: 'allio', result: code });
    throw new ApiError(status, code, message, details);
  };

  app.post('/webhooks/allio/:webhookKey', async (req, reply) => {
    const p = params.safeParse(req.params);
    if (!p.success) return reject(404, 'integration_not_found', 'No ALLIO integration has this webhook URL.');
    const integration = await findByWebhookKey(deps.db, p.data.webhookKey);
    if (!integration) return reject(404, 'integration_not_found', 'No ALLIO integration has this webhook URL.');
    if (!integration.active)
      return reject(403, 'integration_inactive', 'This ALLIO integration is switched off; enable it before sending webhooks.');
    const body = allioWebhookBody.safeParse(req.body);
    if (!body.success)
      return reject(422, 'invalid_webhook', 'The webhook body does not match {uuid, command, indexes}.',
        body.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })));
    if (body.data.uuid.toLowerCase() !== integration.integration_uuid.toLowerCase())
      return reject(403, 'uuid_mismatch', 'The body uuid is not the integration_uuid of the integration this URL belongs to.');

    const [row] = await deps.db('allio_webhook')
      .insert({
        integration_uuid: integration.integration_uuid,
        integration_id: integration.id,
        command: body.data.command,
        external_ids_array: JSON.stringify(body.data.indexes),
        request_id: req.id,
      })
      .returning(['id']);
    deps.metrics.webhooks.inc({ source: 'allio', result: 'accepted' });
    req.log.info({ webhookId: row?.id, integration: integration.name, command: body.data.command, ids: body.data.indexes.length }, 'allio webhook stored');
    return reply.status(200).send({ status: 'accepted', id: Number(row?.id) });
  });
}
