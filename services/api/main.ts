// Entry point of the `api` Deployment: tenant REST and the webhook ingress.
import { collectProcessMetrics, createDb, createLogger, createMetrics, loadConfig, pingDb } from '../core/index.js';
import { runService } from '../core/runtime.js';
import { buildApi } from './app.js';
import { apiEnv } from './config.js';

await runService('api', async () => {
  const config = loadConfig(apiEnv);
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'api' });
  const metrics = createMetrics();
  collectProcessMetrics(metrics.registry);
  const db = createDb(config, { applicationName: 'hub-api' });
  const app = buildApi({
    db, logger, metrics, bodyLimitBytes: config.HTTP_BODY_LIMIT_BYTES,
    readiness: [{ name: 'postgres', check: () => pingDb(db) }],
  });
  await app.listen({ port: config.PORT, host: '0.0.0.0' });
  return {
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    shutdown: async () => {
      await app.close();
      await db.destroy();
    },
  };
});
