// The api service's configuration. The webhook ingress needs only PostgreSQL (Redis or RabbitMQ
// being down never makes it refuse webhooks); the tenant API adds Redis, RabbitMQ, the identity
// provider and the data encryption keys.
import { z } from 'zod';
import { tenantAuthEnv } from '../core/auth/tenant-jwt.js';
import { amqpEnv, baseEnv, databaseEnv, httpEnv, redisEnv } from '../core/config.js';
import { encryptionKeysEnv } from '../core/field-cipher.js';
import { smartHomeEnv } from '../domains/smart-home/config.js';

/**
 * Per-integration ALLIO webhook intake limits (allio-intake.ts). A whole minute's budget may arrive
 * at once. Defaults are far above real traffic — ALLIO sends one webhook per change, a handful of
 * ids each, and bulk re-exports in batches of at most 10,000 ids — yet bound a flood to 10
 * webhooks/s. Deletions are rarer and destructive: at most one full 10,000-id *_DEL webhook a
 * minute. The id budgets may not go below one full webhook (10,000), or such a webhook would be
 * refused forever.
 */
export const allioIntakeEnv = z.object({
  ALLIO_WEBHOOKS_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(600),
  ALLIO_WEBHOOK_IDS_PER_MINUTE: z.coerce
    .number()
    .int()
    .min(10_000)
    .max(100_000_000)
    .default(100_000),
  ALLIO_WEBHOOK_DELETE_IDS_PER_MINUTE: z.coerce
    .number()
    .int()
    .min(10_000)
    .max(100_000_000)
    .default(10_000),
});
export type AllioIntakeConfig = z.infer<typeof allioIntakeEnv>;

/**
 * Webhook intake writes (intake-writers.ts): group commit limits. A batch holds at most the
 * requests in flight, so 500 is a brake only past hundreds of concurrent webhooks per process; two
 * writes in flight let one batch fill while the other commits (bench/intake.ts measures them).
 * The queue bound is under a second of the ~16,000 one-row commits/s PostgreSQL manages on a
 * 2-core machine: past it the database is not keeping up, and a quick 503 with Retry-After beats a
 * slow 200.
 */
export const intakeEnv = z.object({
  INTAKE_BATCH_MAX: z.coerce.number().int().min(1).max(5_000).default(500),
  INTAKE_WRITES_IN_FLIGHT: z.coerce.number().int().min(1).max(32).default(2),
  INTAKE_QUEUE_MAX: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
  /**
   * How long an integration looked up by webhook key is kept in memory. Changes reach every api
   * process at once through NOTIFY; this bounds staleness only while that connection is down.
   */
  INTAKE_INTEGRATION_CACHE_MS: z.coerce.number().int().min(0).max(300_000).default(5_000),
});
export type IntakeConfig = z.infer<typeof intakeEnv>;

export const apiEnv = baseEnv
  .merge(databaseEnv)
  .merge(httpEnv)
  .merge(allioIntakeEnv)
  .merge(intakeEnv);

export const tenantApiEnv = redisEnv
  .merge(amqpEnv)
  .merge(tenantAuthEnv)
  .merge(encryptionKeysEnv)
  .merge(smartHomeEnv)
  .extend({
    /** Ping interval of tenant WebSockets; a socket that missed one pong is closed at the next. */
    WS_HEARTBEAT_MS: z.coerce.number().int().min(1_000).max(300_000).default(30_000),
    WS_MAX_SOCKETS_PER_TENANT: z.coerce.number().int().min(1).max(1_000).default(20),
    /**
     * Unsent bytes a tenant socket may hold before it is closed as a slow consumer. Events are a
     * few hundred bytes, so 256 KiB is about a thousand of them behind: such a client is better off
     * reconnecting and reading the state over REST. A socket that stopped reading also misses its
     * pongs and is dropped by the heartbeat within two intervals, so only a burst can fill many.
     */
    WS_MAX_BUFFERED_BYTES: z.coerce
      .number()
      .int()
      .min(1_024)
      .max(64 * 1024 * 1024)
      .default(256 * 1024),
  });
