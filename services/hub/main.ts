// `npm start`: every service of the hub in one process against local PostgreSQL, Redis and
// RabbitMQ (standard localhost ports unless the environment says otherwise), migrating first.
// `npm start -- --simulators` also runs the partner simulators, demo data and the tenant demo page.
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { connectAmqp, pingAmqp } from '../core/amqp.js';
import { TenantJwtAuthenticator } from '../core/auth/tenant-jwt.js';
import { FieldCipher } from '../core/field-cipher.js';
import {
  allioEnv,
  amqpEnv,
  databaseEnv,
  deadLetterEnv,
  loadConfig,
  migrate,
  pingDb,
  pingRedis,
  redisEnv,
  retentionEnv,
  WorkListener,
} from '../core/index.js';
import {
  checkoutRoot,
  devDir,
  LOCAL_DEFAULTS,
  probeLocalServers,
  serversMissingMessage,
} from '../core/local-servers.js';
import { createRetention } from '../core/retention/service.js';
import { DeadLetterKeeper } from '../core/dead-letters/keeper.js';
import { assertBaseTopology, DEAD_LETTER_QUEUE } from '../contracts/smart-home-topology.js';
import { assertStatusDeadLetters, DEAD_QUEUE } from '../domains/kitchen/status-events.js';
import { closeRedis } from '../core/redis.js';
import {
  connectRedis,
  instanceId,
  processBasics,
  runService,
  StartupDependencyError,
} from '../core/runtime.js';
import { createAllioSync } from '../allio-sync/service.js';
import { apiEnv, tenantApiEnv } from '../api/config.js';
import { buildApi } from '../api/app.js';
import { INTEGRATION_CACHE_ENTRIES, IntegrationCache } from '../domains/allio/integration-cache.js';
import { INTEGRATIONS } from '../domains/allio/integrations.js';
import { AllioIntakeLimiter } from '../api/allio-intake.js';
import { createTenantApi } from '../api/smart-home/index.js';
import { createMqBridge } from '../mq-bridge/service.js';
import { authEnv } from '../auth/config.js';
import { createAuthService } from '../auth/service.js';
import { freePort } from '../core/net.js';
import { startTenantIdp, type TenantIdp } from '../simulators/tenant-idp/server.js';
import { startDemo, type Demo } from './demo.js';
import { devEncryptionKeys, devSigningKeys } from './dev-keys.js';
import { prepareKitchenDemo, type KitchenDemo } from './kitchen-demo.js';
import { orderStatusSource } from '../api/kitchen/status-catch-up.js';
import { registerDemoPage, startSmartHomeDemo } from './smart-home-demo.js';

const port = z.coerce.number().int().min(0).max(65535);
const localEnv = z.object({
  ALLIO_SIM_PORT: port.default(4010),
  /** The development identity provider, started when TENANT_JWT_ISSUER is not set. */
  TENANT_IDP_PORT: port.default(4020),
  /** The development authorization server for partners (client credentials, tokens for RabbitMQ). */
  AUTH_PORT: port.default(4030),
  /** Where `npm start` keeps its development data-encryption and token-signing keys. */
  HUB_DEV_DIR: z
    .string()
    .min(1)
    .default(devDir(checkoutRoot(import.meta.url) ?? process.cwd(), {})),
});

function listeningPort(address: string | AddressInfo | null): number {
  if (address && typeof address === 'object') return address.port;
  throw new Error('the HTTP server is not listening on a TCP port');
}

await runService('hub', async () => {
  const { values } = parseArgs({
    options: {
      simulators: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write('usage: npm start [-- --simulators]\n');
    process.exit(0);
  }
  const env: Record<string, string | undefined> = { ...LOCAL_DEFAULTS, ...process.env };
  const local = loadConfig(localEnv, env);
  // The three servers first: a newcomer without one learns which, its variable and how to start it.
  const servers = loadConfig(databaseEnv.merge(redisEnv).merge(amqpEnv), env);
  const failed = (await probeLocalServers(servers)).filter((p) => !p.ok);
  if (failed.length > 0) throw new StartupDependencyError(serversMissingMessage(failed));
  let idp: TenantIdp | undefined;
  if (!env.TENANT_JWT_ISSUER?.trim()) {
    idp = await startTenantIdp({ port: local.TENANT_IDP_PORT });
    Object.assign(env, {
      TENANT_JWT_ISSUER: idp.issuer,
      TENANT_JWKS_URL: idp.jwksUrl,
      TENANT_JWT_AUDIENCE: idp.audience,
    });
  }
  const devKeys = env.DATA_ENCRYPTION_KEYS?.trim()
    ? undefined
    : devEncryptionKeys(local.HUB_DEV_DIR);
  if (devKeys) env.DATA_ENCRYPTION_KEYS = devKeys.value;
  const devSigning = env.AUTH_SIGNING_JWKS?.trim() ? undefined : devSigningKeys(local.HUB_DEV_DIR);
  if (devSigning) env.AUTH_SIGNING_JWKS = devSigning.jwks;
  const config = {
    ...loadConfig(apiEnv.merge(tenantApiEnv), env),
    ...loadConfig(allioEnv, env),
    ...loadConfig(retentionEnv.merge(deadLetterEnv), env),
  };

  const { logger, metrics, db } = await processBasics('hub', config);
  if (idp) {
    logger.info({ issuer: idp.issuer }, 'development identity provider issuing tenant tokens');
  }
  if (devKeys) {
    logger.info(
      { file: devKeys.file, created: devKeys.created },
      'development data-encryption key in use',
    );
  }
  const migrated = await migrate(db, config.DATABASE_SCHEMA);
  logger.info({ schema: config.DATABASE_SCHEMA, applied: migrated.applied }, 'database migrated');
  const redis = connectRedis(config, logger);
  const redisSubscriber = connectRedis(config, logger, { subscriber: true });
  const amqp = connectAmqp(config.AMQP_URL, logger, {
    name: `hub ${instanceId(config.INSTANCE_ID)}`,
  });
  const cipher = new FieldCipher(config.DATA_ENCRYPTION_KEYS);
  const owner = instanceId(config.INSTANCE_ID);
  const authenticator = new TenantJwtAuthenticator(config, { logger });
  const listener = WorkListener.fromConfig(config, logger);
  // The kitchen's partners are the simulators here, so it runs only with them.
  const kitchen: KitchenDemo | undefined = values.simulators
    ? await prepareKitchenDemo({
        db,
        logger,
        metrics,
        listener,
        owner,
        env,
        redis,
        keyPrefix: config.REDIS_KEY_PREFIX,
        amqp,
        authenticator,
        idp,
      })
    : undefined;

  const tenant = createTenantApi({
    db,
    redis,
    redisSubscriber,
    amqp,
    authenticator,
    cipher,
    config,
    logger,
    metrics,
  });
  if (kitchen) tenant.sockets.redeliverFrom(orderStatusSource(db));
  const integrations = IntegrationCache.onDatabase(db, {
    ttlMs: config.INTAKE_INTEGRATION_CACHE_MS,
    maxEntries: INTEGRATION_CACHE_ENTRIES,
  });
  listener.on(INTEGRATIONS, () => integrations.invalidate());
  const app = buildApi({
    db,
    logger,
    metrics,
    bodyLimitBytes: config.HTTP_BODY_LIMIT_BYTES,
    limits: config,
    tenant,
    integrations,
    intake: config,
    allioIntake: new AllioIntakeLimiter(redis, config.REDIS_KEY_PREFIX, config, metrics, logger),
    readiness: [
      { name: 'postgres', check: () => pingDb(db) },
      { name: 'redis', check: () => pingRedis(redis) },
      { name: 'rabbitmq', check: () => pingAmqp(amqp) },
    ],
    kitchen: kitchen?.routes,
  });
  if (values.simulators && idp) registerDemoPage(app, idp, kitchen);
  // The issuer names its port, so a port chosen by the system (0) is picked before listening.
  const authPort = local.AUTH_PORT || (await freePort());
  const authConfig = loadConfig(authEnv, {
    ...env,
    PORT: String(authPort),
    AUTH_ISSUER: env.AUTH_ISSUER ?? `http://127.0.0.1:${authPort}`,
  });
  const auth = await createAuthService({
    config: authConfig,
    db,
    metrics,
    logger: logger.child({ service: 'auth' }),
  });
  await auth.http.listen({ port: authPort, host: '127.0.0.1' });
  logger.info(
    { issuer: authConfig.AUTH_ISSUER, publicKeyFile: devSigning?.publicKeyFile },
    'development authorization server issuing partner tokens',
  );
  const sync = createAllioSync({ db, redis, config, logger, metrics, listener, owner });
  const bridge = createMqBridge({
    db,
    redis,
    amqp,
    cipher,
    config,
    logger,
    metrics,
    listener,
    owner,
  });
  const retention = createRetention({ db, config, logger, metrics, listener, owner });
  const deadLetters = new DeadLetterKeeper({
    enabled: config.DEAD_LETTERS_KEEP,
    maxBodyBytes: config.DEAD_LETTER_MAX_BODY_BYTES,
    amqp,
    db,
    cipher,
    logger,
    metrics,
    listener,
    owner,
    queues: [
      { queue: DEAD_LETTER_QUEUE, setup: assertBaseTopology },
      { queue: DEAD_QUEUE, setup: assertStatusDeadLetters },
    ],
  });
  const address = await app.listen({ port: config.PORT, host: '0.0.0.0' });
  await listener.start();
  await sync.start();
  await bridge.start();
  await retention.start();
  await deadLetters.start();
  let demo: Demo | undefined;
  let smartHomeDemo: { stop(): Promise<void> } | undefined;
  if (values.simulators) {
    await kitchen?.start(`http://127.0.0.1:${listeningPort(app.server.address())}`);
    demo = await startDemo({
      db,
      logger,
      apiUrl: `http://127.0.0.1:${listeningPort(app.server.address())}`,
      simulatorPort: local.ALLIO_SIM_PORT,
    });
    smartHomeDemo = await startSmartHomeDemo({ db, amqpUrl: config.AMQP_URL, logger });
    logger.info({ page: `${address}/demo/` }, 'demo: tenant demo page ready');
  }
  logger.info({ address, simulators: values.simulators }, 'integration hub running');
  return {
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    // Intake first, then the workers (finishing what they hold), then the simulators they call.
    shutdown: [
      { waitsFor: 'the HTTP requests and WebSockets in flight', run: () => app.close() },
      { run: () => auth.stop() },
      {
        waitsFor: `the ALLIO tasks and smart-home work in hand (up to ${config.SHUTDOWN_TIMEOUT_MS / 1000} s)`,
        run: () =>
          Promise.all([
            sync.stop(config.SHUTDOWN_TIMEOUT_MS),
            bridge.stop(config.SHUTDOWN_TIMEOUT_MS),
            retention.stop(config.SHUTDOWN_TIMEOUT_MS),
            deadLetters.stop(config.SHUTDOWN_TIMEOUT_MS),
          ]),
      },
      { waitsFor: 'the kitchen work in hand', run: () => kitchen?.stop() },
      { run: () => smartHomeDemo?.stop() },
      { run: () => demo?.stop() },
      { run: () => listener.stop() },
      { waitsFor: 'unconfirmed RabbitMQ publishes', run: () => amqp.close() },
      { run: () => idp?.close() },
      { waitsFor: 'the database pool', run: () => db.destroy() },
      // Never waits for a Redis that is down.
      { run: () => Promise.all([closeRedis(redis), closeRedis(redisSubscriber)]) },
    ],
  };
});
