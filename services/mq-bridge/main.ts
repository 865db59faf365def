// Entry point of the `mq-bridge` Deployment: smart-home requests to partners and their replies, the
// keeper of the smart-home dead letters, the daily retention purge, plus /healthz, /readyz, /metrics.
import { pingAmqp, connectAmqp } from '../core/amqp.js';
import { createHttpServer, loadConfig, pingDb, pingRedis, WorkListener } from '../core/index.js';
import { FieldCipher } from '../core/field-cipher.js';
import { closeRedis } from '../core/redis.js';
import { connectRedis, instanceId, processBasics, runService } from '../core/runtime.js';
import { mqBridgeEnv } from '../domains/smart-home/config.js';
import { createMqBridge } from './service.js';
import { createRetention } from '../core/retention/service.js';
import { DeadLetterKeeper } from '../core/dead-letters/keeper.js';
import { assertBaseTopology, DEAD_LETTER_QUEUE } from '../contracts/smart-home-topology.js';

await runService('mq-bridge', async () => {
  const config = loadConfig(mqBridgeEnv);
  const { logger, metrics, db } = await processBasics('mq-bridge', config);
  const redis = connectRedis(config, logger);
  const amqp = connectAmqp(config.AMQP_URL, logger, {
    name: `mq-bridge ${instanceId(config.INSTANCE_ID)}`,
  });
  const listener = WorkListener.fromConfig(config, logger);
  const owner = instanceId(config.INSTANCE_ID);
  const cipher = new FieldCipher(config.DATA_ENCRYPTION_KEYS);
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
  // Dead letters may be partners' connect commands with personal data: their bodies are sealed.
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
    queues: [{ queue: DEAD_LETTER_QUEUE, setup: assertBaseTopology }],
  });
  const retention = createRetention({ db, config, logger, metrics, listener, owner });
  const http = createHttpServer({
    logger,
    metrics,
    limits: config,
    readiness: [
      { name: 'postgres', check: () => pingDb(db) },
      { name: 'redis', check: () => pingRedis(redis) },
      { name: 'rabbitmq', check: () => pingAmqp(amqp) },
    ],
  });
  await http.listen({ port: config.PORT, host: '0.0.0.0' });
  await listener.start();
  await bridge.start();
  await deadLetters.start();
  await retention.start();
  return {
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    shutdown: [
      {
        waitsFor: `the requests and replies in hand (up to ${config.SHUTDOWN_TIMEOUT_MS / 1000} s)`,
        run: () =>
          Promise.all([
            bridge.stop(config.SHUTDOWN_TIMEOUT_MS),
            deadLetters.stop(config.SHUTDOWN_TIMEOUT_MS),
            retention.stop(config.SHUTDOWN_TIMEOUT_MS),
          ]),
      },
      { run: () => listener.stop() },
      { waitsFor: 'the HTTP requests in flight', run: () => http.close() },
      { waitsFor: 'unconfirmed RabbitMQ publishes', run: () => amqp.close() },
      { waitsFor: 'the database pool', run: () => db.destroy() },
      // Never waits for a Redis that is down.
      { run: () => closeRedis(redis) },
    ],
  };
});
