// Error helpers: normalising unknown throwables, PostgreSQL error codes, and the retry
// classification every reconciler uses (timeouts, 5xx, 429 and connection errors retry).

export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === 'string' ? thrown : `Non-error thrown: ${String(thrown)}`);
}

/** The error's message; for an AggregateError (a host name with several addresses), its parts'. */
export function describeError(err: Error): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    return [...new Set(err.errors.map((e) => toError(e).message))].join('; ');
  }
  return err.message || codeOf(err) || err.name;
}

/** PostgreSQL SQLSTATE codes the hub reacts to. */
export const PgCode = {
  UNIQUE_VIOLATION: '23505',
  UNDEFINED_TABLE: '42P01',
  SERIALIZATION_FAILURE: '40001',
  DEADLOCK_DETECTED: '40P01',
  ADMIN_SHUTDOWN: '57P01',
  CRASH_SHUTDOWN: '57P02',
  CANNOT_CONNECT_NOW: '57P03',
  TOO_MANY_CONNECTIONS: '53300',
} as const;

/** Socket errors of a connection that failed or broke (as Node reports them at the top level). */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
]);

/** What node-postgres says when a connection ends under a query or cannot be made in time. */
const PG_CONNECTION_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;

/**
 * Whether a failed query failed because PostgreSQL could not be reached or dropped the connection
 * (refused, reset, shut down by an administrator, starting up, out of connection slots, SQLSTATE
 * class 08, the pool's acquire timeout), as opposed to a query it answered with an error. Only the
 * error itself is looked at, never its causes: an HTTP client's socket error wrapped in a 'fetch
 * failed' is a partner's outage, not the database's.
 */
export function isDatabaseUnavailable(thrown: unknown): boolean {
  if (!(thrown instanceof Error)) return false;
  if (thrown instanceof AggregateError) {
    return thrown.errors.length > 0 && thrown.errors.every(isDatabaseUnavailable);
  }
  if (thrown.name === 'KnexTimeoutError') return true;
  const code = codeOf(thrown);
  if (code && SOCKET_CODES.has(code)) return true;
  if (
    code &&
    (/^08[0-9A-Z]{3}$/.test(code) ||
      code === PgCode.ADMIN_SHUTDOWN ||
      code === PgCode.CRASH_SHUTDOWN ||
      code === PgCode.CANNOT_CONNECT_NOW ||
      code === PgCode.TOO_MANY_CONNECTIONS)
  ) {
    return true;
  }
  return PG_CONNECTION_MESSAGES.test(thrown.message);
}

/** An HTTP answer from a partner that was not a success. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** A failure that must not be retried (bad data, a 4xx other than 408/429, missing config). */
export class PermanentError extends Error {
  /** The classification reason; subclasses name theirs (e.g. outbound_redirect). */
  readonly reason: string;

  constructor(message: string, options?: { cause?: unknown; reason?: string }) {
    super(message, options);
    this.name = 'PermanentError';
    this.reason = options?.reason ?? 'permanent';
  }
}

export type RetryReason =
  'timeout' | 'http_429' | 'http_5xx' | 'connection' | 'database' | 'unknown';

export type Classification =
  | { retryable: true; reason: RetryReason; retryAfterMs?: number }
  | { retryable: false; reason: string };

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

function codeOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** Decides whether an error is worth retrying, walking `cause` chains (fetch wraps socket errors). */
export function classifyError(thrown: unknown): Classification {
  let err: unknown = thrown;
  for (let depth = 0; depth < 5 && err; depth++) {
    if (err instanceof PermanentError) return { retryable: false, reason: err.reason };
    if (err instanceof HttpError) {
      if (err.status === 429) {
        return { retryable: true, reason: 'http_429', retryAfterMs: err.retryAfterMs };
      }
      if (err.status >= 500 || err.status === 408) {
        return { retryable: true, reason: 'http_5xx', retryAfterMs: err.retryAfterMs };
      }
      return { retryable: false, reason: `http_${err.status}` };
    }
    if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
      return { retryable: true, reason: 'timeout' };
    }
    const code = codeOf(err);
    if (code && CONNECTION_CODES.has(code)) return { retryable: true, reason: 'connection' };
    // SQLSTATE classes 08 (connection), 40 (transaction rollback), 53 (resources), 57 (operator).
    if (code && /^(08|40|53|57)[0-9A-Z]{3}$/.test(code)) {
      return { retryable: true, reason: 'database' };
    }
    err = err instanceof Error ? err.cause : undefined;
  }
  return { retryable: true, reason: 'unknown' };
}

/** Parses a Retry-After header (seconds or HTTP date) into milliseconds from `now`. */
export function parseRetryAfter(
  value: string | null | undefined,
  now = Date.now(),
): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  // Anything else must be an HTTP date; Date.parse would read '-1' as a year.
  if (!/[a-z]/i.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
