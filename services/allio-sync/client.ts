// HTTP client for the ALLIO API. Every request first takes a slot from the shared rate limiter
// (ALLIO allows 2 requests per second per source IP, across all our replicas).
import { z } from 'zod';
import { HttpError, parseRetryAfter, PermanentError } from '../core/errors.js';
import type { Metrics } from '../core/metrics.js';
import type { LimitSpec, RateLimiter } from '../core/ratelimit/limiter.js';
import type { Entity } from './commands.js';

export const ALLIO_PROVIDER = 'allio';

const PATHS: Record<Entity, string> = { reserve: 'reserve/list', dealcard: 'dealcard/list' };

const listResponse = z.object({ items: z.array(z.unknown()) });

export interface AllioClientOptions {
  limiter: RateLimiter;
  limit: LimitSpec;
  egressIp: string;
  timeoutMs: number;
  metrics: Metrics;
  /** Injected for tests of the HTTP layer; defaults to the global fetch. */
  fetch?: typeof fetch;
}

export class AllioClient {
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly o: AllioClientOptions) {
    this.fetchImpl = o.fetch ?? fetch;
  }

  /**
   * `POST {base}/{entity}/list` with `{"ids": [...]}` (at most 100). Throws HttpError for non-2xx
   * answers (429 carries Retry-After), PermanentError for an answer that is not the documented shape.
   */
  async list(
    baseUrl: string,
    token: string,
    entity: Entity,
    body: { ids: number[] } | { date: string },
    signal?: AbortSignal,
  ): Promise<unknown[]> {
    await this.o.limiter.acquire(ALLIO_PROVIDER, this.o.egressIp, this.o.limit, signal);
    const timeout = AbortSignal.timeout(this.o.timeoutMs);
    const end = this.o.metrics.partnerRequests.startTimer({ partner: ALLIO_PROVIDER, operation: PATHS[entity] });
    let result = 'error';
    try {
      const res = await this.fetchImpl(`${baseUrl.replace(/\/+$/, '')}/${PATHS[entity]}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      result = String(res.status);
      const text = await res.text();
      if (!res.ok) {
        const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
        // ALLIO counts the quota per IP: when it says "too many", every replica must pause.
        if (res.status === 429)
          await this.o.limiter.pause(ALLIO_PROVIDER, this.o.egressIp, this.o.limit, retryAfterMs ?? 1_000);
        throw new HttpError(res.status, `ALLIO ${PATHS[entity]} answered ${res.status}: ${text.slice(0, 300)}`, retryAfterMs);
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (cause) {
        throw new PermanentError(`ALLIO ${PATHS[entity]} answered 200 with a body that is not JSON`, { cause });
      }
      const parsed = listResponse.safeParse(json);
      if (!parsed.success) throw new PermanentError(`ALLIO ${PATHS[entity]} answered 200 without an items array`);
      return parsed.data.items;
    } finally {
      end({ result });
    }
  }
}
