// ALLIO webhook intake: find the integration by the URL key, check the body's uuid
// against it, charge it to the integration's intake limits, store the webhook (group commit with
// the webhooks arriving at the same time) and answer 200 only after the commit. Any rejection
// stores nothing.
import type { FastifyInstance } from 'fastify';
import type { Knex } from 'knex';
import { z } from 'zod';
import { ApiError } from '../core/http.js';
import { boundedArray } from '../core/validation.js';
import { validationError } from '../core/validation-errors.js';
import type { Metrics } from '../core/metrics.js';
import { uncachedLookup, type IntegrationLookup } from '../domains/allio/integration-cache.js';
import type { AllioIntakeLimiter } from './allio-intake.js';
import {
  intakeCommitter,
  intakeDefaults,
  writeAllioWebhooks,
  type IntakeConfig,
} from './intake-writers.js';

const allioWebhookBody = z
  .object({
    uuid: z.string().uuid('must be the integration UUID'),
    command: z
      .string()
      .regex(/^[A-Z][A-Z0-9_]{0,63}$/, 'must be an upper-case ALLIO command such as RESERVE_ADD'),
    indexes: boundedArray(
      z.union(
        [
          z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
          z
            .string()
            .regex(/^[1-9]\d{0,15}$/)
            .transform(Number),
        ],
        { errorMap: () => ({ message: 'must be a positive integer id' }) },
      ),
      { max: 10_000, tooMany: 'carries more than 10000 ids', notArray: 'must be an array of ids' },
    ).default([]),
  })
  .passthrough();

const params = z.object({
  webhookKey: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9_-]+$/),
});

interface AllioWebhookDeps {
  db: Knex;
  metrics: Metrics;
  /** Per-integration intake limits; without it (tests of other concerns) intake is unlimited. */
  allioIntake?: AllioIntakeLimiter;
  /** Integrations by webhook key; without it each webhook reads the database. */
  integrations?: IntegrationLookup;
  /** Group commit limits (defaults when left out). */
  intake?: IntakeConfig;
}

export function registerAllioWebhook(app: FastifyInstance, deps: AllioWebhookDeps): void {
  const reject = (
    status: number,
    code: string,
    message: string,
    headers?: Record<string, string>,
  ): never => {
    deps.metrics.webhooks.inc({ source: 'allio', result: code });
    throw new ApiError(status, code, message, undefined, headers);
  };

  const integrations = deps.integrations ?? uncachedLookup(deps.db);
  const committer = intakeCommitter(
    writeAllioWebhooks(deps.db),
    deps.intake ?? intakeDefaults,
    deps.metrics,
    'allio',
  );

  app.post('/webhooks/allio/:webhookKey', async (req, reply) => {
    const p = params.safeParse(req.params);
    if (!p.success) {
      return reject(404, 'integration_not_found', 'No ALLIO integration has this webhook URL.');
    }
    const integration = await integrations.findByWebhookKey(p.data.webhookKey);
    if (!integration) {
      return reject(404, 'integration_not_found', 'No ALLIO integration has this webhook URL.');
    }
    if (!integration.active) {
      return reject(
        403,
        'integration_inactive',
        'This ALLIO integration is switched off; enable it before sending webhooks.',
      );
    }
    const body = allioWebhookBody.safeParse(req.body);
    if (!body.success) {
      deps.metrics.webhooks.inc({ source: 'allio', result: 'invalid_webhook' });
      throw validationError(body.error, {
        code: 'invalid_webhook',
        message: 'The webhook body does not match {uuid, command, indexes}.',
      });
    }
    if (body.data.uuid.toLowerCase() !== integration.integration_uuid.toLowerCase()) {
      return reject(
        403,
        'uuid_mismatch',
        'The body uuid is not the integration_uuid of the integration this URL belongs to.',
      );
    }
    const limit = await deps.allioIntake?.admit(
      integration.id,
      body.data.command,
      body.data.indexes.length,
    );
    if (limit && !limit.admit) {
      req.log.warn(
        {
          integration: integration.name,
          command: body.data.command,
          ids: body.data.indexes.length,
          retryAfterSeconds: limit.retryAfterSeconds,
        },
        "allio webhook refused: over the integration's intake limits",
      );
      return reject(
        429,
        'rate_limited',
        `This integration sent more webhooks or ids than its per-minute limit; retry after ${limit.retryAfterSeconds} s.`,
        { 'retry-after': String(limit.retryAfterSeconds) },
      );
    }

    const id = await committer.submit({
      integration_uuid: integration.integration_uuid,
      integration_id: integration.id,
      command: body.data.command,
      external_ids_array: JSON.stringify(body.data.indexes),
      request_id: req.id,
    });
    deps.metrics.webhooks.inc({ source: 'allio', result: 'accepted' });
    req.log.info(
      {
        webhookId: id,
        integration: integration.name,
        command: body.data.command,
        ids: body.data.indexes.length,
      },
      'allio webhook stored',
    );
    return reply.status(200).send({ status: 'accepted', id });
  });
}
