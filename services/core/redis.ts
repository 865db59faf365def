// Redis connections. Commands fail fast while disconnected (no offline queue) so that callers
// such as the rate limiter can decide what "unavailable" means instead of piling up requests.
import { readFileSync } from 'node:fs';
import { Redis, ReplyError } from 'ioredis';
import type { RedisConfig } from './config.js';
import { DependencyState } from './dependency-state.js';
import { toError } from './errors.js';
import type { Logger } from './logger.js';

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

/**
 * Closes a connection without waiting for a Redis that is away: QUIT (so replies in flight still
 * arrive) only while connected and for at most a second, else at once.
 */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    const capped = new Promise<void>((resolve) => (timer = setTimeout(resolve, 1_000)));
    await Promise.race([redis.quit().catch(() => undefined), capped]);
    clearTimeout(timer);
  }
  redis.disconnect();
}

/** The server's address for logs: host and port, never the password. */
function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return '(unparseable Redis URL)';
  }
}

/**
 * The state of Redis as this process sees it, shared by every connection to the same server and
 * every caller (the rate limiter, the command cache, webhook limits, the kitchen status consumer,
 * the connections' own 'error' events): one line when Redis stops answering, one when it answers
 * again, a reminder a minute while it stays down, instead of a warning per failed call.
 */
const states = new WeakMap<Logger, Map<string, DependencyState>>();
const stateOfClient = new WeakMap<Redis, DependencyState>();
/** Connections whose own events feed their state (watchRedis). */
const watched = new WeakSet<Redis>();

function sharedState(logger: Logger, url: string): DependencyState {
  const byUrl = states.get(logger) ?? new Map<string, DependencyState>();
  states.set(logger, byUrl);
  const server = redactRedisUrl(url);
  let state = byUrl.get(server);
  if (!state) {
    state = new DependencyState(logger, {
      name: 'redis',
      fields: { server },
      effect:
        'reconnecting; what needs it waits or fails open as the runbook says (check the server and REDIS_URL)',
    });
    byUrl.set(server, state);
  }
  return state;
}

/** The address a client was created with (ioredis keeps host and port in its options). */
function urlOf(redis: Redis): string {
  return `redis://${redis.options.host ?? 'localhost'}:${redis.options.port ?? 6379}`;
}

function stateOf(redis: Redis, logger: Logger): DependencyState {
  let state = stateOfClient.get(redis);
  if (!state) {
    state = sharedState(logger, urlOf(redis));
    stateOfClient.set(redis, state);
  }
  return state;
}

/**
 * Watches a connection: its 'error' events (each failed reconnect) and its 'ready' feed the shared
 * state, so a connection never logs on its own. An unlistened 'error' would end the process.
 */
export function watchRedis(redis: Redis, logger: Logger): void {
  const state = stateOf(redis, logger);
  watched.add(redis);
  redis.on('error', (err: Error) => state.down(err.message));
  redis.on('ready', () => state.up());
}

/** Whether the failure is Redis being unreachable (or slow), not Redis refusing the command. */
export function isRedisConnectionError(thrown: unknown): boolean {
  return !(thrown instanceof ReplyError);
}

/**
 * A failed Redis call. A connection failure goes to the shared state line (`during` says what
 * failed, in the first line only); a refusal by Redis itself is a bug or a script's verdict and is
 * logged here with the call's context.
 */
export function reportRedisFailure(
  redis: Redis,
  logger: Logger,
  thrown: unknown,
  during: string,
  fields: Record<string, unknown> = {},
): void {
  const err = toError(thrown);
  if (!isRedisConnectionError(err)) {
    logger.warn({ err, ...fields }, `${during}: refused by Redis`);
    return;
  }
  const state = stateOf(redis, logger);
  // While the connection is still being made (at start, or between reconnect attempts) its own
  // 'error' event says whether Redis is down; a call that merely came too early says nothing.
  if (watched.has(redis) && redis.status !== 'ready' && !state.isDown) return;
  state.down(err.message, { during, ...fields });
}

/**
 * What every Lua script of the hub starts with: `now_ms`, the Redis server's clock in milliseconds
 * (microseconds as the fraction), so that every replica reads one clock. One line, so an error's
 * line number is one past the line in the file.
 */
export const LUA_PRELUDE =
  "local now_ms = (function() local t = redis.call('TIME'); return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 end)()\n";

/** A Lua script of the hub's, read from `url`, with LUA_PRELUDE in front. */
export function loadLua(url: URL): string {
  return LUA_PRELUDE + readFileSync(url, 'utf8');
}
