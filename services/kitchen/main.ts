// Entry point of the `kitchen` Deployment: its reconcilers, plus /healthz, /readyz, /metrics.
import { createHttpServer, loadConfig, pingDb, WorkListener } from '../core/index.js';
import { connectAmqp, pingAmqp } from '../core/amqp.js';
import { instanceId, processBasics, runService } from '../core/runtime.js';
import { kitchenEnv } from './config.js';
import { readCa } from './payment-client.js';
import { createKitchen } from './service.js';

await runService('kitchen', async () => {
  const config = loadConfig(kitchenEnv);
  const { logger, metrics, db } = processBasics('kitchen', config);
  const amqp = connectAmqp(config.AMQP_URL, logger, { name: 'kitchen' });
  const listener = new WorkListener(config.DATABASE_URL, config.DATABASE_SCHEMA, logger);
  const kitchen = createKitchen({
    db, config, paymentCa: readCa(config.KITCHEN_PAYMENT_CA_FILE), amqp, logger, metrics, listener, owner: instanceId(config.INSTANCE_ID),
  });
  const http = createHttpServer({
    logger, metrics,
    readiness: [
      { name: 'postgres', check: () => pingDb(db) },
      { name: 'rabbitmq', check: () => pingAmqp(amqp) },
    ],
  });
  await http.listen({ port: config.PORT, host: '0.0.0.0' });
  await listener.start();
  await kitchen.start();
  return {
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    shutdown: async () => {
      await kitchen.stop(config.SHUTDOWN_TIMEOUT_MS);
      await listener.stop();
      await http.close();
      await amqp.close();
      await db.destroy();
    },
  };
});
