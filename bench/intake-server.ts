// A child process of the intake benchmark (`node dist/bench/intake-server.js`, forked with an IPC
// channel): one api process serving the ALLIO and warehouse webhook routes as the api Deployment
// wires them (PostgreSQL, the Redis intake limiter, pino JSON logs at the service's level on
// stdout). Several of them share one port through SO_REUSEPORT, as pods share a Service.
import { once } from 'node:events';
import type { FastifyListenOptions } from 'fastify';
import {
  INTEGRATION_CACHE_ENTRIES,
  IntegrationCache,
} from '../services/domains/allio/integration-cache.js';
import { INTEGRATIONS } from '../services/domains/allio/integrations.js';
import { WorkListener } from '../services/core/engine/notify.js';
import { AllioIntakeLimiter } from '../services/api/allio-intake.js';
import { buildApi } from '../services/api/app.js';
import { apiEnv } from '../services/api/config.js';
import { loadConfig } from '../services/core/config.js';
import { createDb } from '../services/core/db.js';
import { createLogger } from '../services/core/logger.js';
import { createMetrics } from '../services/core/metrics.js';
import { createRedis } from '../services/core/redis.js';
import { registerWarehouseWebhook } from '../services/api/kitchen/warehouse-webhook.js';

export interface IntakeChildConfig {
  databaseUrl: string;
  redisUrl: string;
  schema: string;
  keyPrefix: string;
  port: number;
  logLevel: string;
  warehouseSecret: string;
  /** Read the integration from the database on every webhook (as before the cache), for comparison. */
  uncached: boolean;
  /** Extra environment for the api's config (e.g. intake batching knobs). */
  env: Record<string, string>;
}

const raw = process.env.BENCH_INTAKE_CHILD;
if (!raw || !process.send) {
  throw new Error(
    'intake-server is started by the intake benchmark (fork with BENCH_INTAKE_CHILD)',
  );
}
const cfg = JSON.parse(raw) as IntakeChildConfig;

const config = {
  ...loadConfig(apiEnv, { DATABASE_URL: cfg.databaseUrl, DATABASE_SCHEMA: cfg.schema, ...cfg.env }),
  REDIS_KEY_PREFIX: cfg.keyPrefix,
};
const logger = createLogger({ level: cfg.logLevel, name: 'api' });
const metrics = createMetrics();
const db = createDb(config, { applicationName: 'bench-intake-api', logger });
const redis = createRedis({ REDIS_URL: cfg.redisUrl, REDIS_KEY_PREFIX: cfg.keyPrefix });
redis.on('error', () => undefined);
if (redis.status !== 'ready') await once(redis, 'ready');
// As the api Deployment wires it (main.ts): integrations cached, forgotten on NOTIFY.
const integrations = IntegrationCache.onDatabase(db, {
  ttlMs: config.INTAKE_INTEGRATION_CACHE_MS,
  maxEntries: INTEGRATION_CACHE_ENTRIES,
});
const listener = new WorkListener(config.DATABASE_URL, config.DATABASE_SCHEMA, logger);
listener.on(INTEGRATIONS, () => integrations.invalidate());
await listener.start();
const app = buildApi({
  db,
  logger,
  metrics,
  readiness: [],
  limits: config,
  intake: config,
  integrations: cfg.uncached ? undefined : integrations,
  allioIntake: new AllioIntakeLimiter(redis, config.REDIS_KEY_PREFIX, config, metrics, logger),
});
registerWarehouseWebhook(app, {
  db,
  metrics,
  intake: config,
  secrets: [cfg.warehouseSecret],
  toleranceSeconds: 3_600,
});
// Several processes bind the same port, and the kernel spreads connections between them.
// fastify hands its listen options to net.Server#listen, which takes reusePort (Node >= 22.12, Linux).
const listenOptions: FastifyListenOptions & { reusePort: boolean } = {
  port: cfg.port,
  host: '127.0.0.1',
  reusePort: true,
};
await app.listen(listenOptions);
process.send({ ready: true });

process.on('message', (m: { stop?: boolean }) => {
  if (!m.stop) return;
  void (async () => {
    await app.close();
    await listener.stop();
    await db.destroy();
    redis.disconnect();
    process.exit(0);
  })();
});
