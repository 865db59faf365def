// Redis connections. Commands fail fast while disconnected (no offline queue) so that callers
// such as the rate limiter can decide what "unavailable" means instead of piling up requests.
import { Redis } from 'ioredis';
import type { RedisConfig } from './config.js';

/**
 * `subscriber`: a connection that only SUBSCRIBEs. It queues (un)subscribes while reconnecting and
 * re-subscribes its channels after a reconnect, since a lost subscription would silently drop events.
 */
export function createRedis(config: RedisConfig, o: { subscriber?: boolean } = {}): Redis {
  return new Redis(config.REDIS_URL, {
    enableOfflineQueue: o.subscriber ?? false,
    autoResubscribe: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    retryStrategy: (times) => Math.min(times * 200, 5_000),
    lazyConnect: false,
  });
}

export async function pingRedis(redis: Redis): Promise<void> {
  const pong = await redis.ping();
  if (pong !== 'PONG') throw new Error(`unexpected PING answer: ${pong}`);
}
