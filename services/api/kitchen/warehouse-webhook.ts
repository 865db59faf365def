// Warehouse webhooks at `POST /webhooks/warehouse` (Standard Webhooks): the signature is checked on
// the raw body against every current secret, the timestamp against the tolerance window, and the
// event is stored once per webhook-id (group commit with the deliveries arriving at the same time);
// 200 only after the commit. A refused delivery stores nothing.
import type { FastifyInstance } from 'fastify';
import type { Knex } from 'knex';
import { jsonRefusal } from '../../core/bounds.js';
import { ApiError } from '../../core/http.js';
import type { Metrics } from '../../core/metrics.js';
import { verify } from '../../contracts/standard-webhooks.js';
import { validationError } from '../../core/validation-errors.js';
import { warehouseEvent } from '../../domains/kitchen/warehouse-events.js';
import {
  intakeCommitter,
  intakeDefaults,
  writeWarehouseEvents,
  type IntakeConfig,
} from '../intake-writers.js';

interface WarehouseWebhookDeps {
  db: Knex;
  metrics: Metrics;
  secrets: readonly string[];
  toleranceSeconds: number;
  /** Unix seconds; tests move it. */
  nowSeconds?: () => number;
  /** Group commit limits (defaults when left out). */
  intake?: IntakeConfig;
}

const header = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

export function registerWarehouseWebhook(app: FastifyInstance, d: WarehouseWebhookDeps): void {
  const reject = (status: number, code: string, message: string, details?: unknown): never => {
    d.metrics.webhooks.inc({ source: 'warehouse', result: code });
    throw new ApiError(status, code, message, details);
  };
  const committer = intakeCommitter(
    writeWarehouseEvents(d.db),
    d.intake ?? intakeDefaults,
    d.metrics,
    'warehouse',
  );
  // The signature covers the exact bytes, so this scope keeps the JSON body as text.
  void app.register(async (scope) => {
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) =>
      done(null, body),
    );
    scope.post('/webhooks/warehouse', async (req, reply) => {
      const raw = typeof req.body === 'string' ? req.body : '';
      const result = verify(
        d.secrets,
        {
          id: header(req.headers['webhook-id']),
          timestamp: header(req.headers['webhook-timestamp']),
          signature: header(req.headers['webhook-signature']),
        },
        raw,
        (d.nowSeconds ?? (() => Math.floor(Date.now() / 1000)))(),
        d.toleranceSeconds,
      );
      if (!result.ok) {
        return reject(result.code === 'missing_headers' ? 400 : 401, result.code, result.message);
      }
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch {
        return reject(400, 'malformed_json', 'The body is not JSON.');
      }
      const refusal = jsonRefusal(json);
      if (refusal) return reject(400, refusal.code, refusal.message);
      const event = warehouseEvent.safeParse(json);
      if (!event.success) {
        d.metrics.webhooks.inc({ source: 'warehouse', result: 'invalid_event' });
        throw validationError(event.error, {
          code: 'invalid_event',
          message:
            'The body is not a warehouse event {type: stock.level|stock.receipt|stock.expiry, timestamp, data}.',
        });
      }
      const status = await committer.submit({
        webhook_id: result.id,
        type: event.data.type,
        payload: event.data,
        occurred_at: new Date(event.data.timestamp).toISOString(),
      });
      d.metrics.webhooks.inc({ source: 'warehouse', result: status });
      return reply.status(200).send({ status });
    });
  });
}
