// Entry point of the `api` Deployment: tenant REST and WebSocket, and the webhook ingress; with
// KITCHEN_API=true also the kitchen routes, warehouse webhooks and the order status consumer,
// whose modules (the Protobuf schema, the tech-card XML validator) load only then.
import { connectAmqp, pingAmqp } from '../core/amqp.js';
import { closeRedis } from '../core/redis.js';
import { TenantJwtAuthenticator } from '../core/auth/tenant-jwt.js';
import { FieldCipher } from '../core/field-cipher.js';
import { loadConfig, pingDb, pingRedis } from '../core/index.js';
import { connectRedis, instanceId, processBasics, runService } from '../core/runtime.js';
import { INTEGRATION_CACHE_ENTRIES, IntegrationCache } from '../domains/allio/integration-cache.js';
import { INTEGRATIONS } from '../domains/allio/integrations.js';
import { WorkListener } from '../core/engine/notify.js';
import { AllioIntakeLimiter } from './allio-intake.js';
import { buildApi } from './app.js';
import { apiEnv, tenantApiEnv } from './config.js';
import { kitchenApiEnv, kitchenApiSwitch } from './kitchen/config.js';
import { createTenantApi } from './smart-home/index.js';

await runService('api', async () => {
  const config = { ...loadConfig(apiEnv.merge(kitchenApiSwitch)), ...loadConfig(tenantApiEnv) };
  const kitchenConfig = config.KITCHEN_API ? loadConfig(kitchenApiEnv) : undefined;
  const kitchenModules = kitchenConfig
    ? {
        ...(await import('./kitchen/runtime.js')),
        ...(await import('./kitchen/status-catch-up.js')),
      }
    : undefined;
  const { logger, metrics, db } = await processBasics('api', config);
  const redis = connectRedis(config, logger);
  const redisSubscriber = connectRedis(config, logger, { subscriber: true });
  const amqp = connectAmqp(config.AMQP_URL, logger, {
    name: `api ${instanceId(config.INSTANCE_ID)}`,
  });
  const authenticator = new TenantJwtAuthenticator(config, { logger });
  const tenant = createTenantApi({
    db,
    redis,
    redisSubscriber,
    amqp,
    authenticator,
    cipher: new FieldCipher(config.DATA_ENCRYPTION_KEYS),
    config,
    logger,
    metrics,
  });
  const kitchen =
    kitchenConfig && kitchenModules
      ? kitchenModules.startKitchenApi(kitchenConfig, {
          redis,
          keyPrefix: config.REDIS_KEY_PREFIX,
          amqp,
          authenticator,
          logger,
          metrics,
          installation: config.HUB_INSTALLATION,
        })
      : undefined;
  if (kitchen && kitchenModules) tenant.sockets.redeliverFrom(kitchenModules.orderStatusSource(db));
  // The webhook ingress keeps integrations in memory and forgets them on every change (NOTIFY).
  const integrations = IntegrationCache.onDatabase(db, {
    ttlMs: config.INTAKE_INTEGRATION_CACHE_MS,
    maxEntries: INTEGRATION_CACHE_ENTRIES,
  });
  const listener = WorkListener.fromConfig(config, logger);
  listener.on(INTEGRATIONS, () => integrations.invalidate());
  await listener.start();
  const app = buildApi({
    db,
    logger,
    metrics,
    bodyLimitBytes: config.HTTP_BODY_LIMIT_BYTES,
    limits: config,
    tenant,
    kitchen: kitchen?.routes,
    integrations,
    intake: config,
    allioIntake: new AllioIntakeLimiter(redis, config.REDIS_KEY_PREFIX, config, metrics, logger),
    // Webhooks need only PostgreSQL; Redis and RabbitMQ are reported but do not take the pod out.
    readiness: [
      { name: 'postgres', check: () => pingDb(db) },
      { name: 'redis', check: () => pingRedis(redis), critical: false },
      { name: 'rabbitmq', check: () => pingAmqp(amqp), critical: false },
    ],
  });
  await app.listen({ port: config.PORT, host: '0.0.0.0' });
  return {
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    shutdown: [
      { waitsFor: 'the HTTP requests and WebSockets in flight', run: () => app.close() },
      ...(kitchen
        ? [{ waitsFor: 'the order status events in hand', run: () => kitchen.stop() }]
        : []),
      { run: () => listener.stop() },
      { waitsFor: 'unconfirmed RabbitMQ publishes', run: () => amqp.close() },
      { waitsFor: 'the database pool', run: () => db.destroy() },
      // Never waits for a Redis that is down.
      { run: () => Promise.all([closeRedis(redis), closeRedis(redisSubscriber)]) },
    ],
  };
});
