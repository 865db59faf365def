// Entry point of the `api` Deployment: tenant REST and the webhook ingress.
import { loadConfig, pingDb } from '../core/index.js';
import { processBasics, runService } from '../core/runtime.js';
import { buildApi } from './app.js';
import { apiEnv } from './config.js';

await runService('api', async () => {
  const config = loadConfig(apiEnv);
  const { logger, metrics, db } = processBasics('api', config);
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
