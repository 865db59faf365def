// The api's smart-home part, composed: tenant routes, open commands, and the tenant WebSocket.
import type { AmqpConnectionManager } from 'amqp-connection-manager';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Knex } from 'knex';
import type { Authenticator } from '../../core/auth/tenant-jwt.js';
import type { FieldCipher } from '../../core/field-cipher.js';
import type { Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import type { TenantEvent } from '../../contracts/tenant-events.js';
import { TenantEventPublisher } from '../../core/tenant-events.js';
import { CommandCache } from '../../domains/smart-home/command-cache.js';
import { CommandPush } from '../../domains/smart-home/command-push.js';
import { CommandStore } from '../../domains/smart-home/command-store.js';
import { commandRetentionMs, type SmartHomeConfig } from '../../domains/smart-home/config.js';
import { smartHomeMetrics } from '../../domains/smart-home/metrics.js';
import { CommandPublisher } from '../../domains/smart-home/publisher.js';
import { EventSockets } from '../events-ws.js';
import { commandResultSource, subscriptionChangeSource } from './event-sources.js';
import { OpenCommands } from './open-commands.js';
import { registerSmartHomeRoutes } from './routes.js';

interface TenantApiDeps {
  db: Knex;
  redis: Redis;
  /** A second Redis connection, used only for SUBSCRIBE. */
  redisSubscriber: Redis;
  amqp: AmqpConnectionManager;
  authenticator: Authenticator;
  cipher: FieldCipher;
  config: SmartHomeConfig & {
    REDIS_KEY_PREFIX: string;
    WS_HEARTBEAT_MS: number;
    WS_MAX_SOCKETS_PER_TENANT: number;
    WS_MAX_BUFFERED_BYTES: number;
  };
  logger: Logger;
  metrics: Metrics;
}

export interface TenantApi {
  events: TenantEventPublisher<TenantEvent>;
  sockets: EventSockets;
  register(app: FastifyInstance): void;
}

export function createTenantApi(d: TenantApiDeps): TenantApi {
  const shMetrics = smartHomeMetrics(d.metrics.registry);
  const events = new TenantEventPublisher<TenantEvent>(d.redis, d.config.REDIS_KEY_PREFIX);
  const publisher = new CommandPublisher(d.amqp, d.logger, shMetrics);
  const retentionMs = commandRetentionMs(d.config);
  const store = new CommandStore(d.db);
  const cache = new CommandCache(d.redis, d.config.REDIS_KEY_PREFIX, retentionMs);
  const commands = new OpenCommands({
    store,
    cache,
    push: new CommandPush({ store, cache, logger: d.logger, metrics: shMetrics }),
    publisher,
    logger: d.logger,
    metrics: shMetrics,
    ttlMs: d.config.SMART_HOME_COMMAND_TTL_MS,
    retentionMs,
  });
  const sockets = new EventSockets({
    authenticator: d.authenticator,
    subscriber: d.redisSubscriber,
    keyPrefix: d.config.REDIS_KEY_PREFIX,
    logger: d.logger,
    metrics: shMetrics,
    heartbeatMs: d.config.WS_HEARTBEAT_MS,
    maxSocketsPerTenant: d.config.WS_MAX_SOCKETS_PER_TENANT,
    maxBufferedBytes: d.config.WS_MAX_BUFFERED_BYTES,
  });
  sockets.redeliverFrom(commandResultSource(store));
  sockets.redeliverFrom(subscriptionChangeSource(d.db));
  return {
    events,
    sockets,
    register(app) {
      registerSmartHomeRoutes(app, {
        db: d.db,
        authenticator: d.authenticator,
        cipher: d.cipher,
        events,
        commands,
      });
      sockets.attach(app.server);
      commands.start();
      // Before the server closes: it waits for every connection, and an open WebSocket would hold
      // the shutdown until its watchdog. Tenants get 1001 and reconnect to another replica.
      app.addHook('preClose', async () => {
        await sockets.close();
      });
      app.addHook('onClose', async () => {
        await commands.close();
        await publisher.close();
      });
    },
  };
}
