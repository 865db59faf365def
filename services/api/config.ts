// The api service's configuration. The webhook ingress needs only PostgreSQL (Redis or RabbitMQ
// being down never makes it refuse webhooks); the tenant API adds Redis, RabbitMQ, the identity
// provider and the data encryption keys.
import { z } from 'zod';
import { tenantAuthEnv } from '../core/auth/tenant-jwt.js';
import { amqpEnv, baseEnv, databaseEnv, httpEnv, redisEnv } from '../core/config.js';
import { encryptionKeysEnv } from '../core/field-cipher.js';
import { smartHomeEnv } from '../mq-bridge/config.js';

export const apiEnv = baseEnv.merge(databaseEnv).merge(httpEnv);

export const tenantApiEnv = redisEnv
  .merge(amqpEnv)
  .merge(tenantAuthEnv)
  .merge(encryptionKeysEnv)
  .merge(smartHomeEnv)
  .extend({
    /** Ping interval of tenant WebSockets; a socket that missed one pong is closed at the next. */
    WS_HEARTBEAT_MS: z.coerce.number().int().min(1_000).max(300_000).default(30_000),
    WS_MAX_SOCKETS_PER_TENANT: z.coerce.number().int().min(1).max(1_000).default(20),
  });
