// Entry point of the `allio-sync` Deployment: its reconcilers, plus /healthz, /readyz, /metrics.
import {
  allioEnv, baseEnv, collectProcessMetrics, createDb, createHttpServer, createLogger, createMetrics,
  createRedis, databaseEnv, loadConfig, pingDb, pingRedis, redisEnv, WorkListener,
} from '../core/index.js';
import { instanceId, runService } from '../core/runtime.js';
import { createAllioSync } from './service.js';

export const allioSyncEnv = baseEnv.merge(databaseEnv).merge(redisEnv).merge(allioEnv);

await runService('allio-sync', async () => {
  const config = loadConfig(allioSyncEnv);
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'allio-sync' });
  const metrics = createMetrics();
  collectProcessMetrics(metrics.registry);
  const db = createDb(config, { applicationName: 'hub-allio-sync' });
  const redis = createRedis(config);
  redis.on('error', (err) => logger.warn({ err }, 'redis connection error'));
  const listener = new WorkListener(config.DATABASE_URL, config.DATABASE_SCHEMA, logger);
  const sync = createAllioSync({ db, redis, config, logger, metrics, listener, owner: instanceId(config.INSTANCE_ID) });
  const http = createHttpServer({
    logger, metrics,
    readiness: [
      { name: 'postgres', check: () => pingDb(db) },
      { name: 'redis', check: () => pingRedis(redis) },
    ],
  });
  await http.listen({ port: config.PORT, host: '0.0.0.0' });
  await listener.start();
  await sync.start();
  return {
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    shutdown: async () => {
      await sync.stop(config.SHUTDOWN_TIMEOUT_MS);
      await listener.stop();
      await http.close();
      await db.destroy();
      redis.disconnect();
    },
  };
});
