// Entry point of the `allio-sync` Deployment: its reconcilers and the daily retention purge, plus
// /healthz, /readyz, /metrics.
import { createHttpServer, loadConfig, pingDb, pingRedis, WorkListener } from '../core/index.js';
import { closeRedis } from '../core/redis.js';
import { connectRedis, instanceId, processBasics, runService } from '../core/runtime.js';
import { allioSyncEnv } from './config.js';
import { createAllioSync } from './service.js';
import { createRetention } from '../core/retention/service.js';

await runService('allio-sync', async () => {
  const config = loadConfig(allioSyncEnv);
  const { logger, metrics, db } = await processBasics('allio-sync', config);
  const redis = connectRedis(config, logger);
  const listener = WorkListener.fromConfig(config, logger);
  const owner = instanceId(config.INSTANCE_ID);
  const sync = createAllioSync({ db, redis, config, logger, metrics, listener, owner });
  const retention = createRetention({ db, config, logger, metrics, listener, owner });
  const http = createHttpServer({
    logger,
    metrics,
    limits: config,
    readiness: [
      { name: 'postgres', check: () => pingDb(db) },
      { name: 'redis', check: () => pingRedis(redis) },
    ],
  });
  await http.listen({ port: config.PORT, host: '0.0.0.0' });
  await listener.start();
  await sync.start();
  await retention.start();
  return {
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    shutdown: [
      {
        waitsFor: `the ALLIO tasks in hand (up to ${config.SHUTDOWN_TIMEOUT_MS / 1000} s)`,
        run: () =>
          Promise.all([
            sync.stop(config.SHUTDOWN_TIMEOUT_MS),
            retention.stop(config.SHUTDOWN_TIMEOUT_MS),
          ]),
      },
      { run: () => listener.stop() },
      { waitsFor: 'the HTTP requests in flight', run: () => http.close() },
      { waitsFor: 'the database pool', run: () => db.destroy() },
      // Never waits for a Redis that is down.
      { run: () => closeRedis(redis) },
    ],
  };
});
