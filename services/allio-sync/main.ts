// Entry point of the `allio-sync` Deployment: its reconcilers, plus /healthz, /readyz, /metrics.
import { createHttpServer, loadConfig, pingDb, pingRedis, WorkListener } from '../core/index.js';
import { connectRedis, instanceId, processBasics, runService } from '../core/runtime.js';
import { allioSyncEnv } from './config.js';
import { createAllioSync } from './service.js';

await runService('allio-sync', async () => {
  const config = loadConfig(allioSyncEnv);
  const { logger, metrics, db } = processBasics('allio-sync', config);
  const redis = connectRedis(config, logger);
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
