// Backoff maths for retries: exponential growth, capped, with "equal jitter" so that replicas
// retrying the same partner spread out instead of stampeding together.

export interface BackoffPolicy {
  /** Delay before the first retry, before jitter. */
  baseMs: number;
  /** Upper bound of any single delay. */
  maxMs: number;
  /** Growth per attempt (2 doubles). */
  factor: number;
  /** Longest pause a partner's Retry-After may impose; RETRY_AFTER_CEILING_MS when unset. */
  retryAfterMaxMs?: number;
}

/**
 * No Retry-After parks a row longer than this, whatever the caller configured: the clients clamp to
 * RETRY_AFTER_MAX_MS (5 min by default, at most this hour) first; this guards every other path.
 */
export const RETRY_AFTER_CEILING_MS = 3_600_000;

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1_000, maxMs: 5 * 60_000, factor: 2 };

/**
 * Delay before retry number `attempt` (1 = first retry). Half of the exponential delay is fixed
 * and half is random, so the delay never collapses to zero yet still de-synchronises replicas.
 * A partner's Retry-After wins when it asks for longer, up to `retryAfterMaxMs`.
 */
export function retryDelayMs(
  attempt: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const exp = Math.min(policy.maxMs, policy.baseMs * policy.factor ** Math.max(0, attempt - 1));
  const jittered = exp / 2 + random() * (exp / 2);
  const ceiling = Math.min(
    policy.retryAfterMaxMs ?? RETRY_AFTER_CEILING_MS,
    RETRY_AFTER_CEILING_MS,
  );
  // `> 0` leaves out NaN; Infinity is held to the ceiling like any other absurd ask.
  const asked =
    retryAfterMs !== undefined && retryAfterMs > 0 ? Math.min(retryAfterMs, ceiling) : 0;
  return Math.round(Math.min(Math.max(asked, jittered), Math.max(policy.maxMs, asked)));
}

/** Idle polling: grows the wait while there is nothing to do, up to `maxMs`. */
export function nextIdleDelayMs(current: number, minMs: number, maxMs: number): number {
  if (current <= 0) return minMs;
  return Math.min(maxMs, Math.max(minMs, current * 2));
}
