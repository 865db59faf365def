// A partner's rolling-window quota ("at most N requests in any window", ALLIO's 2 per second per
// IP) shared by all replicas through Redis, counted the way the partner counts it. A request holds
// its place in the window from its grant until its answer comes back, and the window of a request
// starts at its answer: the partner stamped the request's arrival before answering, so a request
// sent a window after the answers of the N before it arrives more than a window after each of
// them, whatever the network, a paused process or the partner's clock add (architecture.md,
// "Rate limiting"). It fails closed: when Redis cannot be reached the caller waits and retries.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { isRedisConnectionError, loadLua, reportRedisFailure } from '../redis.js';
import { sleep } from '../sleep.js';
import { RETRY_AFTER_CEILING_MS, retryDelayMs } from '../engine/backoff.js';

const WINDOW_LUA = loadLua(new URL('./window.lua', import.meta.url));
const WINDOW_END_LUA = loadLua(new URL('./window-end.lua', import.meta.url));
const PENALTY_LUA = loadLua(new URL('./penalty.lua', import.meta.url));

type WindowRedis = Redis & {
  hubWindowTake(
    zset: string,
    pause: string,
    epoch: string,
    perWindow: number,
    windowMs: number,
    holdMs: number,
    id: string,
  ): Promise<[number, number, string]>;
  hubWindowEnd(zset: string, id: string, unused: '0' | '1'): Promise<number>;
  hubWindowPause(pause: string, pauseMs: number): Promise<number>;
};

export interface LimitSpec {
  /** Requests the partner accepts in any rolling window. */
  perWindow: number;
  /** The partner's window, in ms. */
  windowMs: number;
  /** Added to the window after every answer: room for the partner's clock running a little fast. */
  safetyMs?: number;
  /** How long after its grant a request may still be written (connecting, a pause); later, the slot is given back. */
  sendWithinMs: number;
  /** The request's timeout, from its write to the end of its answer. */
  answerWithinMs: number;
}

/** A request to the partner counts as in flight for at most this long after its grant. */
function holdMs(spec: LimitSpec): number {
  return spec.sendWithinMs + spec.answerWithinMs;
}

export interface Grant {
  readonly id: string;
  readonly key: string;
  readonly provider: string;
  waitedMs: number;
  /** performance.now() after which the request must not be written any more (see stillValid). */
  readonly sendBy: number;
  /** Set once the grant is given back or its request has ended. */
  ended: boolean;
}

/** Thrown to callers still waiting for a slot when the limiter is closed (shutdown). */
export class RateLimiterClosedError extends Error {
  override readonly name = 'RateLimiterClosedError';
}

type Waiting = 'redis' | 'slot';

export class RateLimiter {
  private readonly redis: WindowRedis;
  private readonly closing = new AbortController();
  /** What each pending acquire() is waiting for, reported once when the limiter is closed. */
  private readonly waits = new Map<symbol, { provider: string; for: Waiting }>();
  private lastLateLog = Number.NEGATIVE_INFINITY;
  private lateSinceLog = 0;

  constructor(
    redis: Redis,
    private readonly keyPrefix: string,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {
    if (!('hubWindowTake' in redis)) {
      redis.defineCommand('hubWindowTake', { numberOfKeys: 3, lua: WINDOW_LUA });
      redis.defineCommand('hubWindowEnd', { numberOfKeys: 1, lua: WINDOW_END_LUA });
      redis.defineCommand('hubWindowPause', { numberOfKeys: 1, lua: PENALTY_LUA });
    }
    this.redis = redis as WindowRedis;
  }

  key(provider: string, egressIp: string): string {
    return `${this.keyPrefix}ratelimit:${provider}:${egressIp}`;
  }

  /**
   * Waits until a request to `provider` from `egressIp` may be sent under `spec` and returns the
   * grant. The caller writes the request only if `stillValid(grant)` right before the write, and
   * calls `end(grant)` once its answer (or failure) is in. Rejects when `signal` aborts, or with
   * RateLimiterClosedError once close() was called. Redis errors make it wait and try again.
   */
  async acquire(
    provider: string,
    egressIp: string,
    spec: LimitSpec,
    signal?: AbortSignal,
  ): Promise<Grant> {
    if (this.closing.signal.aborted) throw new RateLimiterClosedError('the rate limiter is closed');
    const wait = Symbol(provider);
    const stop = signal ? AbortSignal.any([signal, this.closing.signal]) : this.closing.signal;
    try {
      return await this.take(provider, egressIp, spec, stop, (what) =>
        this.waits.set(wait, { provider, for: what }),
      );
    } catch (thrown) {
      if (this.closing.signal.aborted && !signal?.aborted) {
        throw new RateLimiterClosedError('the rate limiter was closed while waiting', {
          cause: thrown,
        });
      }
      throw thrown;
    } finally {
      this.waits.delete(wait);
    }
  }

  private async take(
    provider: string,
    egressIp: string,
    spec: LimitSpec,
    signal: AbortSignal,
    waiting: (what: Waiting) => void,
  ): Promise<Grant> {
    const key = this.key(provider, egressIp);
    const windowMs = spec.windowMs + (spec.safetyMs ?? 0);
    const hold = holdMs(spec);
    const started = performance.now();
    let redisFailures = 0;
    for (;;) {
      if (signal.aborted) throw abortError(signal);
      const id = randomUUID();
      // Taken before asking: Redis stamps the grant later than this, so the deadline is never late.
      const asked = performance.now();
      let answer: [number, number, string];
      try {
        waiting('redis');
        answer = await untilAborted(
          this.redis.hubWindowTake(
            key,
            `${key}:pause`,
            `${this.keyPrefix}ratelimit:epoch`,
            spec.perWindow,
            windowMs,
            hold,
            id,
          ),
          signal,
        );
        redisFailures = 0;
      } catch (thrown) {
        if (signal.aborted) throw abortError(signal);
        redisFailures++;
        this.metrics.rateLimitErrors.inc({ provider });
        const delay = retryDelayMs(redisFailures, { baseMs: 200, maxMs: 5_000, factor: 2 });
        if (isRedisConnectionError(thrown)) {
          reportRedisFailure(this.redis, this.logger, thrown, 'rate limiter: holding calls', {
            provider,
          });
        } else if (redisFailures === 1 || redisFailures % 20 === 0) {
          this.logger.error(
            { err: toError(thrown), provider, delayMs: delay },
            'rate limiter unavailable; holding calls',
          );
        }
        await sleep(delay, signal);
        continue;
      }
      const [granted, waitMs, why] = answer;
      if (granted === 1) {
        const grant: Grant = {
          id,
          key,
          provider,
          waitedMs: performance.now() - started,
          sendBy: asked + spec.sendWithinMs,
          ended: false,
        };
        this.metrics.rateLimitWait.observe({ provider }, grant.waitedMs / 1000);
        return grant;
      }
      if (why === 'epoch') {
        this.logger.warn(
          { provider, pauseMs: waitMs },
          'rate limiter: Redis holds no record of earlier requests (first start, or restarted without its data); no request until any earlier one would have left the window',
        );
      }
      waiting('slot');
      await sleep(Math.max(1, waitMs), signal);
    }
  }

  /**
   * True while the grant may still be used. Call it right before the request is written, with
   * nothing asynchronous in between; false means the slot is given back (counted, logged at most
   * once a minute) and the caller asks for a new one.
   */
  stillValid(grant: Grant): boolean {
    const now = performance.now();
    if (now <= grant.sendBy) return true;
    this.end(grant, { sent: false });
    this.metrics.rateLimitLateGrants.inc({ provider: grant.provider });
    this.lateSinceLog++;
    if (now - this.lastLateLog >= 60_000) {
      this.logger.warn(
        {
          provider: grant.provider,
          lateMs: Math.round(now - grant.sendBy),
          givenUp: this.lateSinceLog,
        },
        'rate limiter slot given back: the caller reached its send too late (paused or starved); asking again',
      );
      this.lastLateLog = now;
      this.lateSinceLog = 0;
    }
    return false;
  }

  /**
   * Ends a grant: its request was answered or failed (`sent`), and its window starts now; or it was
   * never written, and the slot is free at once. Once per grant; later calls do nothing. Not
   * awaited by callers: if Redis cannot record it, the request keeps its place until its latest
   * possible end, which only makes the limiter wait longer.
   */
  end(grant: Grant, o: { sent: boolean }): void {
    if (grant.ended) return;
    grant.ended = true;
    this.redis.hubWindowEnd(grant.key, grant.id, o.sent ? '0' : '1').catch((thrown: unknown) => {
      this.metrics.rateLimitErrors.inc({ provider: grant.provider });
      reportRedisFailure(
        this.redis,
        this.logger,
        thrown,
        'rate limiter: recording the end of a request',
        { provider: grant.provider },
      );
    });
  }

  /**
   * Ends every wait for a slot at once (shutdown): those callers get RateLimiterClosedError, and so
   * does any later acquire(). Logs one line saying what the ended waits were waiting for.
   */
  close(): void {
    if (this.closing.signal.aborted) return;
    const waiting = { redis: 0, slot: 0 };
    for (const w of this.waits.values()) waiting[w.for]++;
    if (this.waits.size > 0) {
      this.logger.info(
        { waits: this.waits.size, waitingForRedis: waiting.redis, waitingForSlot: waiting.slot },
        `rate limiter closed: ${this.waits.size} calls stopped waiting (${waiting.redis} for Redis to answer, ${waiting.slot} for a slot)`,
      );
    }
    this.closing.abort(new RateLimiterClosedError('the rate limiter is closed'));
  }

  /**
   * The partner refused a call (429): no replica gets a slot for `pauseMs`. Best effort: if Redis is
   * down, callers are held by `acquire` anyway. Callers clamp the partner's ask (RETRY_AFTER_MAX_MS);
   * the ceiling here keeps any other caller from freezing every replica for longer.
   */
  async pause(provider: string, egressIp: string, pauseMs: number): Promise<void> {
    const ms = pauseMs > 0 ? Math.min(pauseMs, RETRY_AFTER_CEILING_MS) : 0;
    if (ms === 0) return;
    try {
      await this.redis.hubWindowPause(`${this.key(provider, egressIp)}:pause`, ms);
    } catch (thrown) {
      this.metrics.rateLimitErrors.inc({ provider });
      reportRedisFailure(this.redis, this.logger, thrown, 'recording a partner pause', {
        provider,
      });
    }
  }
}

/**
 * Records that this Redis key prefix starts empty with no request in flight (a new deployment's
 * first start or a test's own prefix), so that the first grants need not wait out requests that
 * cannot exist. Never call it for a prefix that replicas are already using.
 */
export async function markRateLimitEpoch(redis: Redis, keyPrefix: string): Promise<void> {
  await redis.set(`${keyPrefix}ratelimit:epoch`, String(Date.now()), 'NX');
}

/** Settles with `p`, or rejects as soon as `signal` aborts (the late answer of `p` is ignored). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  p.catch(() => undefined);
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function abortError(signal?: AbortSignal): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error
    ? reason
    : Object.assign(new Error('rate limiter wait aborted'), { name: 'AbortError' });
}
