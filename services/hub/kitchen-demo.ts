// Kitchen part of `npm start -- --simulators`: the payment gateway (TLS 1.3, throw-away
// certificate), robots, 1C and warehouse simulators, a dev identity provider for tenant tokens, the
// kitchen service pointed at them, a demo menu and stock, and the keys and token to try it with.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import type { KitchenRoutes } from '../api/kitchen/index.js';
import type { AmqpConnectionManager } from '../core/amqp.js';
import { startKitchenApi } from '../api/kitchen/runtime.js';
import { createApiKey } from '../core/auth/api-keys.js';
import type { Authenticator } from '../core/auth/tenant-jwt.js';
import { installationEnv, loadConfig } from '../core/config.js';
import type { WorkListener } from '../core/engine/notify.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import type { Redis } from 'ioredis';
import { kitchenEnv } from '../kitchen/config.js';
import { BORSCHT, SALAD } from './demo-cards.js';
import { saveTechCard } from '../domains/kitchen/orders.js';
import { createKitchen } from '../kitchen/service.js';
import { parseTechCard } from '../domains/kitchen/tech-card.js';
import { startOneCSimulator } from '../simulators/onec/server.js';
import { startPaymentGateway } from '../simulators/payment-gateway/server.js';
import { startRobotsSimulator } from '../simulators/robots/server.js';
import type { TenantIdp } from '../simulators/tenant-idp/server.js';
import { selfSignedCertificate } from '../simulators/tls.js';
import { startWarehouseSimulator } from '../simulators/warehouse/server.js';

/** The card the demo pays with; the gateway simulator approves it. */
const TEST_CARD = '4111111111111111';

export interface KitchenDemo {
  routes: KitchenRoutes;
  /** Starts the kitchen and fills the demo data once the API listens at `apiUrl`. */
  start(apiUrl: string): Promise<void>;
  /** A gateway token of the test card, as the app's client-side tokenization would return. */
  tokenizeTestCard(): string;
  stop(): Promise<void>;
}

export async function prepareKitchenDemo(o: {
  db: Knex;
  logger: Logger;
  metrics: Metrics;
  listener: WorkListener;
  owner: string;
  env: Record<string, string | undefined>;
  /** The hub's Redis, RabbitMQ connection and tenant authenticator, shared with the smart-home part. */
  redis: Redis;
  keyPrefix: string;
  amqp: AmqpConnectionManager;
  authenticator: Authenticator;
  /** The development identity provider, when the hub runs one: the demo tenant's token comes from it. */
  idp?: TenantIdp;
}): Promise<KitchenDemo> {
  const secrets = {
    gateway: randomBytes(12).toString('hex'),
    robots: randomBytes(12).toString('hex'),
    onec: randomBytes(12).toString('hex'),
  };
  const warehouseSecret = `whsec_${randomBytes(24).toString('base64')}`;
  const certificate = await selfSignedCertificate();
  const gateway = await startPaymentGateway({ certificate, apiKey: secrets.gateway });
  const robots = await startRobotsSimulator({ apiKey: secrets.robots, cookMs: 5_000 });
  const onec = await startOneCSimulator({ user: 'exchange', password: secrets.onec });
  const api = startKitchenApi(
    { KITCHEN_WAREHOUSE_WEBHOOK_SECRETS: [warehouseSecret], KITCHEN_WAREHOUSE_TOLERANCE_S: 300 },
    {
      redis: o.redis,
      keyPrefix: o.keyPrefix,
      amqp: o.amqp,
      authenticator: o.authenticator,
      logger: o.logger,
      metrics: o.metrics,
      installation: loadConfig(installationEnv, o.env).HUB_INSTALLATION,
    },
  );
  const stops: (() => Promise<void>)[] = [api.stop, gateway.close, robots.close, onec.close];

  return {
    routes: api.routes,
    tokenizeTestCard: () => gateway.tokenize(TEST_CARD),
    async start(apiUrl) {
      const config = loadConfig(kitchenEnv, {
        ...o.env,
        KITCHEN_PAYMENT_URL: gateway.url,
        KITCHEN_PAYMENT_API_KEY: secrets.gateway,
        KITCHEN_ROBOTS_URL: robots.url,
        KITCHEN_ROBOTS_API_KEY: secrets.robots,
        KITCHEN_PRODUCTION_POLL_MS: '1000',
        ONEC_ODATA_URL: onec.url,
        ONEC_USER: 'exchange',
        ONEC_PASSWORD: secrets.onec,
      });
      const kitchen = createKitchen({
        db: o.db,
        config,
        paymentCa: certificate.cert,
        amqp: o.amqp,
        logger: o.logger,
        metrics: o.metrics,
        listener: o.listener,
        owner: o.owner,
      });
      const warehouse = await startWarehouseSimulator({
        targetUrl: `${apiUrl}/webhooks/warehouse`,
        secret: warehouseSecret,
      });
      stops.unshift(async () => {
        await kitchen.stop(5_000);
        await warehouse.close();
      });
      await kitchen.start();
      for (const xml of [BORSCHT, SALAD]) await saveTechCard(o.db, await parseTechCard(xml), xml);
      const expiresAt = new Date(Date.now() + 3 * 86_400_000).toISOString();
      for (const [ingredient, quantity] of [
        ['beet', 20_000],
        ['beef', 10_000],
        ['walnut', 2_000],
      ] as const) {
        await warehouse.send('stock.level', { ingredient, quantity, unit: 'g', expiresAt });
      }
      const operator = await createApiKey(o.db, 'demo kitchen terminal', ['kitchen-operator']);
      const admin = await createApiKey(o.db, 'demo back office', ['kitchen-admin']);
      // Credentials stay out of the log: they go to a file only this user can read.
      const file = path.join(tmpdir(), 'hub-kitchen-demo.json');
      await writeFile(
        file,
        JSON.stringify(
          {
            ...(o.idp
              ? { tenantToken: await o.idp.issue('demo-tenant', { ttlSeconds: 12 * 3600 }) }
              : {}),
            operatorKey: operator.key,
            adminKey: admin.key,
            cardToken: gateway.tokenize(TEST_CARD),
          },
          null,
          2,
        ),
        { mode: 0o600 },
      );
      o.logger.info(
        {
          paymentGateway: gateway.url,
          robots: robots.url,
          onec: onec.url,
          warehouse: warehouse.url,
          credentials: file,
        },
        'demo: kitchen ready (docs/kitchen.md lists calls to try)',
      );
    },
    async stop() {
      for (const stop of stops) await stop();
    },
  };
}
