// The api service's HTTP application: the shared scaffold, the webhook ingress routes and, when
// configured, the tenant API (smart home REST and the WebSocket) and the kitchen routes.
import type { FastifyInstance } from 'fastify';
import type { Knex } from 'knex';
import type { HttpServerConfig } from '../core/config.js';
import { createHttpServer, type ReadinessCheck } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import type { IntegrationLookup } from '../domains/allio/integration-cache.js';
import type { AllioIntakeLimiter } from './allio-intake.js';
import type { IntakeConfig } from './config.js';
import { registerAllioWebhook } from './allio-webhook.js';
import type { KitchenRoutes } from './kitchen/index.js';
import type { TenantApi } from './smart-home/index.js';

interface ApiDeps {
  db: Knex;
  logger: Logger;
  metrics: Metrics;
  readiness: ReadinessCheck[];
  bodyLimitBytes?: number;
  /** Server timeouts and the connection cap (defaults when left out). */
  limits?: Partial<HttpServerConfig>;
  /** Smart-home REST and the tenant WebSocket. */
  tenant?: TenantApi;
  /** Per-integration ALLIO webhook intake limits (Redis); without it intake is unlimited. */
  allioIntake?: AllioIntakeLimiter;
  /** Integrations by webhook key (a cache kept current by NOTIFY); without it each webhook reads the database. */
  integrations?: IntegrationLookup;
  /** Group commit limits of the webhook writes (defaults when left out). */
  intake?: IntakeConfig;
  /** The kitchen API and warehouse webhooks; left out when the kitchen is not configured. The
   *  kitchen's modules (its Protobuf schema, the tech-card XML validator) then never load. */
  kitchen?: KitchenRoutes;
}

export function buildApi(d: ApiDeps): FastifyInstance {
  const app = createHttpServer(d);
  registerAllioWebhook(app, d);
  d.tenant?.register(app);
  d.kitchen?.register(app, d);
  return app;
}
