// The api service's HTTP application: the shared scaffold plus the webhook ingress routes.
import type { FastifyInstance } from 'fastify';
import type { Knex } from 'knex';
import { createHttpServer, type ReadinessCheck } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { registerAllioWebhook } from './allio-webhook.js';

export interface ApiDeps {
  db: Knex;
  logger: Logger;
  metrics: Metrics;
  readiness: ReadinessCheck[];
  bodyLimitBytes?: number;
}

export function buildApi(d: ApiDeps): FastifyInstance {
  const app = createHttpServer(d);
  registerAllioWebhook(app, d);
  return app;
}
