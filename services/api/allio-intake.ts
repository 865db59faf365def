// Per-integration limits on ALLIO webhook intake, shared by every api replica through Redis:
// webhooks per minute, ids per minute, and a stricter budget for ids in *_DEL commands. A key
// holder cannot flood the tables, the sync queue and the ALLIO quota every integration shares.
//
// Redis down or slow: intake stays OPEN. The ingress is documented to need only PostgreSQL (a
// Redis outage must never make ALLIO's webhooks bounce, since ALLIO does not redeliver reliably),
// so for the length of the outage the limits are not enforced; every webhook admitted unchecked
// is counted (hub_webhook_limit_unchecked_total{source="allio"}) and each change between
// "limiter available" and "unavailable" is logged once.
import type { Redis } from 'ioredis';
import { toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { QuotaGate, type Quota } from '../core/ratelimit/quota.js';
import type { AllioIntakeConfig } from './config.js';

const MINUTE_MS = 60_000;
/** A healthy Redis answers in about a millisecond; a webhook is not held longer than this for it. */
const REDIS_TIMEOUT_MS = 250;

type IntakeDecision =
  | { admit: true; unchecked?: 'limiter_unavailable' }
  | { admit: false; reason: 'rate_limited'; retryAfterSeconds: number };

/** Commands whose ids are deletions (ALLIO's RESERVE_DEL, DEALCARD_DEL, and any later *_DEL). */
export const isDeleteCommand = (command: string): boolean => command.endsWith('_DEL');

/** The quotas one webhook is charged against; pure, so the arithmetic is testable without Redis. */
export function intakeQuotas(
  c: AllioIntakeConfig,
  keyBase: string,
  command: string,
  ids: number,
): Quota[] {
  return [
    {
      key: `${keyBase}:webhooks`,
      limit: c.ALLIO_WEBHOOKS_PER_MINUTE,
      periodMs: MINUTE_MS,
      cost: 1,
    },
    {
      key: `${keyBase}:ids`,
      limit: c.ALLIO_WEBHOOK_IDS_PER_MINUTE,
      periodMs: MINUTE_MS,
      cost: ids,
    },
    {
      key: `${keyBase}:delete-ids`,
      limit: c.ALLIO_WEBHOOK_DELETE_IDS_PER_MINUTE,
      periodMs: MINUTE_MS,
      cost: isDeleteCommand(command) ? ids : 0,
    },
  ];
}

export class AllioIntakeLimiter {
  private readonly gate: QuotaGate;
  private available = true;

  constructor(
    redis: Redis,
    private readonly keyPrefix: string,
    private readonly config: AllioIntakeConfig,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    timeoutMs = REDIS_TIMEOUT_MS,
  ) {
    this.gate = new QuotaGate(redis, timeoutMs);
  }

  async admit(integrationId: string, command: string, ids: number): Promise<IntakeDecision> {
    // The hash tag keeps one integration's keys in one Redis Cluster slot (the script uses all three).
    const keyBase = `${this.keyPrefix}intake:{allio:${integrationId}}`;
    try {
      const a = await this.gate.admit(intakeQuotas(this.config, keyBase, command, ids));
      this.setAvailable(true);
      if (a.admitted) return { admit: true };
      return {
        admit: false,
        reason: 'rate_limited',
        retryAfterSeconds: Math.max(1, Math.ceil(a.retryAfterMs / 1000)),
      };
    } catch (thrown) {
      this.setAvailable(false, toError(thrown));
      this.metrics.webhookLimitUnchecked.inc({ source: 'allio' });
      return { admit: true, unchecked: 'limiter_unavailable' };
    }
  }

  private setAvailable(ok: boolean, err?: Error): void {
    if (ok === this.available) return;
    this.available = ok;
    if (ok) {
      this.logger.info(
        { source: 'allio' },
        'webhook intake limiter reachable again; limits enforced',
      );
    } else {
      this.logger.warn(
        { reason: err?.message, source: 'allio' },
        'webhook intake limiter unavailable; accepting webhooks unlimited until Redis answers',
      );
    }
  }
}
