// Entry point of the `mq-bridge` Deployment: smart-home requests to partners and their replies,
// plus /healthz, /readyz, /metrics.
import { pingAmqp, connectAmqp } from '../core/amqp.js';
import { createHttpServer, loadConfig, pingDb, pingRedis, WorkListener } from '../core/index.js';
import { FieldCipher } from '../core/field-cipher.js';
import { connectRedis, instanceId, processBasics, runService } from '../core/runtime.js';
import { mqBridgeEnv } from './config.js';
import { createMqBridge } from './service.js';

await runService('mq-bridge', async () => {
  const config = loadConfig(mqBridgeEnv);
  const { logger, metrics, db } = processBasics('mq-bridge', config);
  const redis = connectRedis(config, logger);
  const amqp = connectAmqp(config.AMQP_URL, logger, { name: `mq-bridge ${instanceId(config.INSTANCE_ID)}` });
  const listener = new WorkListener(config.DATABASE_URL, config.DATABASE_SCHEMA, logger);
  const bridge = createMqBridge({
    db, redis, amqp, cipher: new FieldCipher(config.DATA_ENCRYPTION_KEYS), config, logger, metrics, listener,
    owner: instanceId(config.INSTANCE_ID),
  });
  const http = createHttpServer({
    logger, metrics,
    readiness: [
      { name: 'postgres', check: () => pingDb(db) },
      { name: 'redis', check: () => pingRedis(redis) },
      { name: 'rabbitmq', check: () => pingAmqp(amqp) },
    ],
  });
  await http.listen({ port: config.PORT, host: '0.0.0.0' });
  await listener.start();
  await bridge.start();
  return {
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    shutdown: async () => {
      await bridge.stop(config.SHUTDOWN_TIMEOUT_MS);
      await listener.stop();
      await http.close();
      await amqp.close();
      await db.destroy();
      redis.disconnect();
    },
  };
});
