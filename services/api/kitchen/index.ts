// The kitchen API: `/v1/kitchen/...` for tenants (JWT) and machine clients (API keys), RBAC per
// route with deny by default, card numbers refused anywhere in a body, and the warehouse webhooks.
import type { FastifyInstance } from 'fastify';
import type { Knex } from 'knex';
import { guardRoutes } from '../../core/auth/rbac.js';
import type { Authenticator } from '../../core/auth/tenant-jwt.js';
import type { Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import { MAX_CARD_BYTES } from '../../domains/kitchen/tech-card.js';
import { registerCatalogRoutes } from './catalog.js';
import { registerOrderRoutes } from './orders.js';
import { KITCHEN_PERMISSIONS } from '../../domains/kitchen/permissions.js';
import { refuseCardNumbers } from './validation.js';
import { registerWarehouseWebhook } from './warehouse-webhook.js';
import type { IntakeConfig } from '../config.js';

const KITCHEN_PREFIX = '/v1/kitchen/';

export interface KitchenRoutesDeps {
  db: Knex;
  logger: Logger;
  metrics: Metrics;
  authenticator: Authenticator;
  warehouse: { secrets: readonly string[]; toleranceSeconds: number; nowSeconds?: () => number };
  /** Group commit limits of the warehouse webhook's writes (defaults when left out). */
  intake?: IntakeConfig;
}

/** The kitchen routes bound to their own dependencies, registered by the api on its server. */
export interface KitchenRoutes {
  register(app: FastifyInstance, base: Pick<KitchenRoutesDeps, 'db' | 'logger' | 'metrics'>): void;
}

/** The kitchen routes with their own dependencies; the api adds its database, logger and metrics. */
export function kitchenRoutes(
  own: Omit<KitchenRoutesDeps, 'db' | 'logger' | 'metrics'>,
): KitchenRoutes {
  return { register: (app, base) => registerKitchenRoutes(app, { ...base, ...own }) };
}

function registerKitchenRoutes(app: FastifyInstance, d: KitchenRoutesDeps): void {
  guardRoutes(app, {
    prefix: KITCHEN_PREFIX,
    table: KITCHEN_PERMISSIONS,
    db: d.db,
    authenticator: d.authenticator,
  });
  app.addContentTypeParser(
    ['application/xml', 'text/xml'],
    { parseAs: 'string', bodyLimit: MAX_CARD_BYTES },
    (_req, body, done) => done(null, body),
  );
  app.addHook('preValidation', async (req) => {
    if (req.routeOptions.url?.startsWith(KITCHEN_PREFIX)) await refuseCardNumbers(req);
  });
  registerOrderRoutes(app, d);
  registerCatalogRoutes(app, d);
  registerWarehouseWebhook(app, { db: d.db, metrics: d.metrics, intake: d.intake, ...d.warehouse });
}
