// Per-test isolation on the real servers: each context gets its own PostgreSQL schema (migrated),
// its own Redis key prefix and its own metrics registry, and removes all of them on close.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createDb, type Db } from '../../services/core/db.js';
import { migrate } from '../../services/core/migrate.js';
import { createMetrics, type Metrics } from '../../services/core/metrics.js';
import { markRateLimitEpoch } from '../../services/core/ratelimit/limiter.js';
import type { Logger } from '../../services/core/logger.js';
import { track } from './leaks.js';

export const DATABASE_URL =
  process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export interface TestContext {
  schema: string;
  db: Db;
  redis: Redis;
  keyPrefix: string;
  metrics: Metrics;
  logger: Logger;
  /** A second pool on the same schema, as another replica would have. */
  newDb(): Db;
  close(): Promise<void>;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

export async function createTestContext(label = 't'): Promise<TestContext> {
  const schema = uniqueName(`t_${label.replace(/[^a-z0-9]/g, '').slice(0, 20)}`);
  const extraDbs: Db[] = [];
  const dbConfig = { DATABASE_URL, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: 10 };
  const db = createDb(dbConfig);
  await migrate(db, schema);
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const keyPrefix = `test:${schema}:`;
  // A new prefix: no ALLIO request can be in flight under it, so the first grant need not wait.
  await markRateLimitEpoch(redis, keyPrefix);
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const untrack = track(`test context ${schema}`);
  return {
    schema,
    db,
    redis,
    keyPrefix,
    metrics: createMetrics(),
    logger,
    newDb() {
      const extra = createDb(dbConfig);
      extraDbs.push(extra);
      return extra;
    },
    async close() {
      await Promise.all(extraDbs.map((d) => d.destroy()));
      await db.raw(`drop schema if exists "${schema}" cascade`);
      await db.destroy();
      const keys = await redis.keys(`${keyPrefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
      untrack();
    },
  };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes; never a fixed sleep. */
export async function waitFor<T>(
  check: () => Promise<T> | T,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}
