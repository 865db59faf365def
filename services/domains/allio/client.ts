// HTTP client for the ALLIO API. Every request first takes a slot from the shared rate limiter
// (ALLIO allows 2 requests per second per source IP, across all our replicas), is written only
// while that slot is still good (RateLimiter.stillValid, checked in the tick of the write), and
// ends its slot when its answer or failure is in: the quota's window runs from that moment.
import http from 'node:http';
import https from 'node:https';
import { z } from 'zod';
import { HttpError, PermanentError, toError } from '../../core/errors.js';
import { holdRequest } from '../../core/held-request.js';
import type { Metrics } from '../../core/metrics.js';
import { excerpt, type OutboundPolicy } from '../../core/outbound.js';
import type { Grant, LimitSpec, RateLimiter } from '../../core/ratelimit/limiter.js';
import type { Entity } from './commands.js';

const ALLIO_PROVIDER = 'allio';

const PATHS: Record<Entity, string> = { reserve: 'reserve/list', dealcard: 'dealcard/list' };

const listResponse = z.object({ items: z.array(z.unknown()) });

/** How long a request may wait for its connection after its slot before the slot is given back. */
const SEND_WITHIN_MS = 1_000;

/** ALLIO's quota as the limiter keeps it: `ALLIO_RATE_PER_SECOND` requests in any rolling second. */
export function allioLimit(config: {
  ALLIO_RATE_PER_SECOND: number;
  ALLIO_RATE_SAFETY_MS: number;
  ALLIO_HTTP_TIMEOUT_MS: number;
}): LimitSpec {
  return {
    perWindow: config.ALLIO_RATE_PER_SECOND,
    windowMs: 1_000,
    safetyMs: config.ALLIO_RATE_SAFETY_MS,
    sendWithinMs: SEND_WITHIN_MS,
    answerWithinMs: config.ALLIO_HTTP_TIMEOUT_MS,
  };
}

interface AllioClientOptions {
  limiter: RateLimiter;
  limit: LimitSpec;
  egressIp: string;
  timeoutMs: number;
  metrics: Metrics;
  /** https only, allowed hosts, no redirects, bounded answers, clamped Retry-After. */
  outbound: OutboundPolicy;
  /** Local address the connections leave from (a host with one address per egress IP); default any. */
  sourceAddress?: string;
}

export class AllioClient {
  // Keep-alive: a pooled connection is ready at once, so a slot is rarely lost to connecting.
  private readonly agents: { 'http:': http.Agent; 'https:': https.Agent };

  constructor(private readonly o: AllioClientOptions) {
    const agent = {
      keepAlive: true,
      ...(o.sourceAddress ? { localAddress: o.sourceAddress } : {}),
    };
    this.agents = { 'http:': new http.Agent(agent), 'https:': new https.Agent(agent) };
  }

  /** Takes a slot of the shared quota ahead of a request (see list's `grant`). */
  slot(signal?: AbortSignal): Promise<Grant> {
    return this.o.limiter.acquire(ALLIO_PROVIDER, this.o.egressIp, this.o.limit, signal);
  }

  /** Gives back a slot taken with slot() that no request used: it frees at once. */
  unusedSlot(grant: Grant): void {
    this.o.limiter.end(grant, { sent: false });
  }

  /**
   * `POST {base}/{entity}/list` with `{"ids": [...]}` (at most 100). Throws HttpError for non-2xx
   * answers (429 carries Retry-After), PermanentError for an answer that is not the documented shape.
   * `grant`: a slot taken beforehand with slot(); the request uses it (or a new one if it has gone
   * stale) and ends it in every case.
   */
  async list(
    baseUrl: string,
    token: string,
    entity: Entity,
    body: { ids: number[] } | { date: string },
    signal?: AbortSignal,
    grant?: Grant,
  ): Promise<unknown[]> {
    let url: URL;
    try {
      // Refused before taking a slot of the shared quota or opening a connection.
      url = this.o.outbound.check(
        ALLIO_PROVIDER,
        `${baseUrl.replace(/\/+$/, '')}/${PATHS[entity]}`,
      );
    } catch (thrown) {
      if (grant) this.unusedSlot(grant);
      throw thrown;
    }
    return this.send(url, token, entity, body, grant ?? (await this.slot(signal)), signal);
  }

  private async send(
    url: URL,
    token: string,
    entity: Entity,
    body: { ids: number[] } | { date: string },
    granted: Grant,
    signal?: AbortSignal,
  ): Promise<unknown[]> {
    let grant = granted;
    const request = holdRequest({
      partner: ALLIO_PROVIDER,
      url,
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json',
      },
      body: JSON.stringify(body),
      agent: url.protocol === 'https:' ? this.agents['https:'] : this.agents['http:'],
      timeoutMs: this.o.timeoutMs,
      signal,
      outbound: this.o.outbound,
    });
    try {
      await request.connected;
      // The slot's deadline is checked with nothing asynchronous between the check and the write:
      // a request held up after its slot (a paused process, a slow connect) takes a new slot.
      while (!this.o.limiter.stillValid(grant)) {
        grant = await this.o.limiter.acquire(ALLIO_PROVIDER, this.o.egressIp, this.o.limit, signal);
      }
      request.send();
    } catch (thrown) {
      this.o.limiter.end(grant, { sent: false });
      request.cancel(toError(thrown));
      throw thrown;
    }
    const end = this.o.metrics.partnerRequests.startTimer({
      partner: ALLIO_PROVIDER,
      operation: PATHS[entity],
    });
    let result = 'error';
    try {
      const res = await request.answer.finally(() => this.o.limiter.end(grant, { sent: true }));
      result = String(res.status);
      const { text } = res;
      if (!res.ok) {
        const retryAfterMs = this.o.outbound.retryAfterMs(
          ALLIO_PROVIDER,
          res.header('retry-after') ?? null,
        );
        // ALLIO counts the quota per IP: when it says "too many", every replica must pause.
        if (res.status === 429) {
          await this.o.limiter.pause(ALLIO_PROVIDER, this.o.egressIp, retryAfterMs ?? 1_000);
        }
        throw new HttpError(
          res.status,
          `ALLIO ${PATHS[entity]} answered ${res.status}: ${excerpt(text)}`,
          retryAfterMs,
        );
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (cause) {
        throw new PermanentError(
          `ALLIO ${PATHS[entity]} answered 200 with a body that is not JSON`,
          { cause },
        );
      }
      const parsed = listResponse.safeParse(json);
      if (!parsed.success) {
        throw new PermanentError(`ALLIO ${PATHS[entity]} answered 200 without an items array`);
      }
      return parsed.data.items;
    } finally {
      end({ result });
    }
  }

  /** Closes the pooled connections (shutdown). */
  close(): void {
    this.agents['http:'].destroy();
    this.agents['https:'].destroy();
  }
}
