// `npm start`: every service of the hub in one process against local PostgreSQL and Redis
// (standard localhost ports unless the environment says otherwise), migrating first.
// `npm start -- --simulators` also runs the partner simulators and a demo integration.
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { allioEnv, loadConfig, migrate, pingDb, pingRedis, redisEnv, WorkListener } from '../core/index.js';
import { connectRedis, instanceId, processBasics, runService } from '../core/runtime.js';
import { createAllioSync } from '../allio-sync/service.js';
import { apiEnv } from '../api/config.js';
import { buildApi } from '../api/app.js';
import { startDemo, type Demo } from './demo.js';

const demoEnv = z.object({ ALLIO_SIM_PORT: z.coerce.number().int().min(0).max(65535).default(4010) });

/** Local defaults: the services a development machine runs on their standard ports. */
export const LOCAL_DEFAULTS: Record<string, string> = {
  DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres',
  DATABASE_SCHEMA: 'hub',
  REDIS_URL: 'redis://127.0.0.1:6379',
  PORT: '8080',
};

function listeningPort(address: string | AddressInfo | null): number {
  if (address && typeof address === 'object') return address.port;
  throw new Error('the HTTP server is not listening on a TCP port');
}

await runService('hub', async () => {
  const { values } = parseArgs({
    options: { simulators: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } },
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write('usage: npm start [-- --simulators]\n');
    process.exit(0);
  }
  const env = { ...LOCAL_DEFAULTS, ...process.env };
  const config = {
    ...loadConfig(apiEnv.merge(redisEnv), env),
    ...loadConfig(allioEnv, env),
    ...loadConfig(demoEnv, env),
  };
  const { logger, metrics, db } = processBasics('hub', config);
  const migrated = await migrate(db, config.DATABASE_SCHEMA);
  logger.info({ schema: config.DATABASE_SCHEMA, applied: migrated.applied }, 'database migrated');
  const redis = connectRedis(config, logger);

  const app = buildApi({
    db, logger, metrics, bodyLimitBytes: config.HTTP_BODY_LIMIT_BYTES,
    readiness: [
      { name: 'postgres', check: () => pingDb(db) },
      { name: 'redis', check: () => pingRedis(redis) },
    ],
  });
  const listener = new WorkListener(config.DATABASE_URL, config.DATABASE_SCHEMA, logger);
  const sync = createAllioSync({ db, redis, config, logger, metrics, listener, owner: instanceId(config.INSTANCE_ID) });
  const address = await app.listen({ port: config.PORT, host: '0.0.0.0' });
  await listener.start();
  await sync.start();
  let demo: Demo | undefined;
  if (values.simulators) {
    demo = await startDemo({
      db, logger,
      apiUrl: `http://127.0.0.1:${listeningPort(app.server.address())}`,
      simulatorPort: config.ALLIO_SIM_PORT,
    });
  }
  logger.info({ address, simulators: values.simulators }, 'integration hub running');
  return {
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    shutdown: async () => {
      await demo?.stop();
      await app.close();
      await sync.stop(config.SHUTDOWN_TIMEOUT_MS);
      await listener.stop();
      await db.destroy();
      redis.disconnect();
    },
  };
});
