// What an api process needs to serve the kitchen: the warehouse secrets for the routes, and the
// RabbitMQ consumer that turns status events into tenant events. It runs on the process's own
// Redis, RabbitMQ connection and tenant authenticator, shared with the smart-home routes.
import type { AmqpConnectionManager } from '../../core/amqp.js';
import type { Authenticator } from '../../core/auth/tenant-jwt.js';
import type { Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import type { TenantEvent } from '../../contracts/tenant-events.js';
import { TenantEventPublisher } from '../../core/tenant-events.js';
import type { Redis } from 'ioredis';
import { createKitchenMetrics } from '../../domains/kitchen/metrics.js';
import { statusRoute } from '../../domains/kitchen/status-events.js';
import type { KitchenApiConfig } from './config.js';
import { kitchenRoutes, type KitchenRoutes } from './index.js';
import { startOrderStatusConsumer } from './status-consumer.js';

interface KitchenApiRuntime {
  routes: KitchenRoutes;
  stop(): Promise<void>;
}

export function startKitchenApi(
  config: KitchenApiConfig,
  o: {
    redis: Redis;
    keyPrefix: string;
    amqp: AmqpConnectionManager;
    authenticator: Authenticator;
    logger: Logger;
    metrics: Metrics;
    /** HUB_INSTALLATION: the status events of this installation's kitchen are consumed. */
    installation?: string;
  },
): KitchenApiRuntime {
  const consumer = startOrderStatusConsumer({
    route: statusRoute(o.installation),
    amqp: o.amqp,
    publisher: new TenantEventPublisher<TenantEvent>(o.redis, o.keyPrefix),
    redis: o.redis,
    keyPrefix: o.keyPrefix,
    logger: o.logger,
    metrics: createKitchenMetrics(o.metrics.registry),
  });
  return {
    routes: kitchenRoutes({
      authenticator: o.authenticator,
      warehouse: {
        secrets: config.KITCHEN_WAREHOUSE_WEBHOOK_SECRETS,
        toleranceSeconds: config.KITCHEN_WAREHOUSE_TOLERANCE_S,
      },
    }),
    stop: () => consumer.close(),
  };
}
