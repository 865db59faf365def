// Entry point of the `kitchen` Deployment: its reconcilers, the keeper of the order-status dead
// letters and the daily retention purge, plus /healthz, /readyz, /metrics.
import { createHttpServer, loadConfig, pingDb, WorkListener } from '../core/index.js';
import { connectAmqp, pingAmqp } from '../core/amqp.js';
import { instanceId, processBasics, runService } from '../core/runtime.js';
import { kitchenEnv } from './config.js';
import { readCa } from '../domains/kitchen/payment-client.js';
import { createKitchen } from './service.js';
import { createRetention } from '../core/retention/service.js';
import { DeadLetterKeeper } from '../core/dead-letters/keeper.js';
import { assertStatusDeadLetters, DEAD_QUEUE } from '../domains/kitchen/status-events.js';

await runService('kitchen', async () => {
  const config = loadConfig(kitchenEnv);
  const { logger, metrics, db } = await processBasics('kitchen', config);
  const amqp = connectAmqp(config.AMQP_URL, logger, { name: 'kitchen' });
  const listener = WorkListener.fromConfig(config, logger);
  const owner = instanceId(config.INSTANCE_ID);
  const kitchen = createKitchen({
    db,
    config,
    paymentCa: readCa(config.KITCHEN_PAYMENT_CA_FILE),
    amqp,
    logger,
    metrics,
    listener,
    owner,
  });
  const retention = createRetention({ db, config, logger, metrics, listener, owner });
  // Order status events hold no personal data: their bodies are kept as published.
  const deadLetters = new DeadLetterKeeper({
    enabled: config.DEAD_LETTERS_KEEP,
    maxBodyBytes: config.DEAD_LETTER_MAX_BODY_BYTES,
    amqp,
    db,
    logger,
    metrics,
    listener,
    owner,
    queues: [{ queue: DEAD_QUEUE, setup: assertStatusDeadLetters }],
  });
  const http = createHttpServer({
    logger,
    metrics,
    limits: config,
    readiness: [
      { name: 'postgres', check: () => pingDb(db) },
      { name: 'rabbitmq', check: () => pingAmqp(amqp) },
    ],
  });
  await http.listen({ port: config.PORT, host: '0.0.0.0' });
  await listener.start();
  await kitchen.start();
  await deadLetters.start();
  await retention.start();
  return {
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    shutdown: [
      {
        waitsFor: `the kitchen work in hand (up to ${config.SHUTDOWN_TIMEOUT_MS / 1000} s)`,
        run: () =>
          Promise.all([
            kitchen.stop(config.SHUTDOWN_TIMEOUT_MS),
            deadLetters.stop(config.SHUTDOWN_TIMEOUT_MS),
            retention.stop(config.SHUTDOWN_TIMEOUT_MS),
          ]),
      },
      { run: () => listener.stop() },
      { waitsFor: 'the HTTP requests in flight', run: () => http.close() },
      { waitsFor: 'unconfirmed RabbitMQ publishes', run: () => amqp.close() },
      { waitsFor: 'the database pool', run: () => db.destroy() },
    ],
  };
});
