// Entry point of the development authorization server (`auth`): OAuth2 client credentials for
// partners, JWT access tokens RabbitMQ verifies, and the audit of every token request. Production
// uses Keycloak (docs/deployment.md).
import { loadConfig } from '../core/config.js';
import { processBasics, runService } from '../core/runtime.js';
import { authEnv } from './config.js';
import { createAuthService } from './service.js';

await runService('auth', async () => {
  const config = loadConfig(authEnv);
  const { logger, metrics, db } = await processBasics('auth', config);
  const auth = await createAuthService({ config, db, logger, metrics });
  await auth.http.listen({ port: config.PORT, host: '0.0.0.0' });
  logger.info({ issuer: config.AUTH_ISSUER }, 'authorization server listening');
  return {
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    shutdown: async () => {
      await auth.stop();
      await db.destroy();
    },
  };
});
