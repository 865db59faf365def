// Quotas shared by all replicas through Redis ("at most N units per period", one atomic Lua
// script): a request over any quota is refused with the time until it would fit, never queued.
// Unlike RateLimiter (which paces our own calls and fails closed), what to do when Redis cannot
// answer is the caller's decision: admit() rejects, with a bounded wait.
import type { Redis } from 'ioredis';
import { loadLua } from '../redis.js';

const QUOTA_LUA = loadLua(new URL('./quota.lua', import.meta.url));

type QuotaRedis = Redis & {
  hubQuotaAdmit(...args: (string | number)[]): Promise<[number, number]>;
};

export interface Quota {
  key: string;
  /** Units allowed per period; a whole period's units may arrive at once. */
  limit: number;
  periodMs: number;
  /** Units this request uses (0 = this quota is not charged). */
  cost: number;
}

type Admission = { admitted: true } | { admitted: false; retryAfterMs: number };

export class QuotaGate {
  private readonly redis: QuotaRedis;

  constructor(
    redis: Redis,
    private readonly timeoutMs: number,
  ) {
    if (!('hubQuotaAdmit' in redis)) redis.defineCommand('hubQuotaAdmit', { lua: QUOTA_LUA });
    this.redis = redis as QuotaRedis;
  }

  /** Charges every quota or none. Rejects when Redis fails or takes longer than the timeout. */
  async admit(quotas: readonly Quota[]): Promise<Admission> {
    const args = quotas.flatMap((q) => [q.periodMs / q.limit, q.periodMs, q.cost]);
    const call = this.redis.hubQuotaAdmit(quotas.length, ...quotas.map((q) => q.key), ...args);
    const [admitted, retryAfterMs] = await withTimeout(call, this.timeoutMs);
    return admitted === 1 ? { admitted: true } : { admitted: false, retryAfterMs };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  // A late answer (or failure) of the abandoned call must not surface as an unhandled rejection.
  p.catch(() => undefined);
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
