// A rate limiter shared by all replicas through Redis (GCRA, one atomic Lua script). It fails
// closed: when Redis cannot be reached the caller waits and retries, it is never let through.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { sleep } from '../sleep.js';
import { retryDelayMs } from '../engine/backoff.js';

const GCRA_LUA = readFileSync(new URL('./gcra.lua', import.meta.url), 'utf8');
const PENALTY_LUA = readFileSync(new URL('./penalty.lua', import.meta.url), 'utf8');

type GcraRedis = Redis & {
  hubGcraReserve(key: string, intervalMs: number, toleranceMs: number, maxWaitMs: number): Promise<[number, number]>;
  hubGcraPenalty(key: string, pauseMs: number, intervalMs: number): Promise<number>;
};

export interface LimitSpec {
  /** Requests allowed per second. */
  ratePerSecond: number;
  /** Added to every slot's spacing so that jitter never pushes two requests too close. */
  safetyMs?: number;
  /** Requests allowed back to back beyond the steady rate (0 = strictly spaced). */
  burst?: number;
}

/** The spacing GCRA enforces for a limit, in milliseconds. */
export function emissionIntervalMs(spec: LimitSpec): number {
  return 1000 / spec.ratePerSecond + (spec.safetyMs ?? 0);
}

export interface AcquireResult {
  waitedMs: number;
}

export class RateLimiter {
  private readonly redis: GcraRedis;

  constructor(
    redis: Redis,
    private readonly keyPrefix: string,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    /** A caller holding a reservation further away than this gives it up and asks again later. */
    private readonly maxReserveAheadMs = 5_000,
  ) {
    if (!('hubGcraReserve' in redis)) {
      redis.defineCommand('hubGcraReserve', { numberOfKeys: 1, lua: GCRA_LUA });
      redis.defineCommand('hubGcraPenalty', { numberOfKeys: 1, lua: PENALTY_LUA });
    }
    this.redis = redis as GcraRedis;
  }

  key(provider: string, egressIp: string): string {
    return `${this.keyPrefix}ratelimit:${provider}:${egressIp}`;
  }

  /**
   * Waits until a request to `provider` from `egressIp` may be sent under `spec`, then resolves.
   * Rejects only when `signal` aborts. Redis errors make it wait and try again (fail closed).
   */
  async acquire(provider: string, egressIp: string, spec: LimitSpec, signal?: AbortSignal): Promise<AcquireResult> {
    const key = this.key(provider, egressIp);
    const interval = emissionIntervalMs(spec);
    const tolerance = (spec.burst ?? 0) * interval;
    const started = performance.now();
    let redisFailures = 0;
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      let granted: number;
      let waitMs: number;
      try {
        [granted, waitMs] = await this.redis.hubGcraReserve(key, interval, tolerance, this.maxReserveAheadMs);
        redisFailures = 0;
      } catch (thrown) {
        redisFailures++;
        this.metrics.rateLimitErrors.inc({ provider });
        const delay = retryDelayMs(redisFailures, { baseMs: 200, maxMs: 5_000, factor: 2 });
        if (redisFailures === 1 || redisFailures % 20 === 0)
          this.logger.error({ err: toError(thrown), provider, delayMs: delay }, 'rate limiter unavailable; holding calls');
        await sleep(delay, signal);
        continue;
      }
      if (granted === 1) {
        if (waitMs > 0 && !(await sleep(waitMs, signal))) throw abortError(signal);
        const waitedMs = performance.now() - started;
        this.metrics.rateLimitWait.observe({ provider }, waitedMs / 1000);
        return { waitedMs };
      }
      // Too far ahead to hold a slot: sleep until the queue has drained enough, then ask again.
      await sleep(Math.min(waitMs - this.maxReserveAheadMs + interval, 5_000), signal);
    }
  }

  /**
   * The partner refused a call (429): no replica gets a slot for `pauseMs`. Best effort: if Redis is
   * down, callers are held by `acquire` anyway.
   */
  async pause(provider: string, egressIp: string, spec: LimitSpec, pauseMs: number): Promise<void> {
    try {
      await this.redis.hubGcraPenalty(this.key(provider, egressIp), pauseMs, emissionIntervalMs(spec));
    } catch (thrown) {
      this.metrics.rateLimitErrors.inc({ provider });
      this.logger.warn({ err: toError(thrown), provider }, 'could not record the partner pause in Redis');
    }
  }
}

function abortError(signal?: AbortSignal): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : Object.assign(new Error('rate limiter wait aborted'), { name: 'AbortError' });
}
