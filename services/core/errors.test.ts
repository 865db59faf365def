// Unit tests for error normalisation, retry classification and Retry-After parsing.
import { describe, expect, test } from '@jest/globals';
import {
  classifyError,
  describeError,
  HttpError,
  isDatabaseUnavailable,
  parseRetryAfter,
  PermanentError,
  PgCode,
  toError,
} from './errors.js';

function namedError(name: string, message = name): Error {
  const e = new Error(message);
  e.name = name;
  return e;
}

function pgError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code, severity: 'ERROR' });
}

describe('classifyError', () => {
  test('HTTP 429 is retryable as http_429 and carries the retryAfterMs', () => {
    expect(classifyError(new HttpError(429, 'Too Many Requests', 2_000))).toEqual({
      retryable: true,
      reason: 'http_429',
      retryAfterMs: 2_000,
    });
  });

  test('HTTP 503 and 500 are retryable as http_5xx', () => {
    expect(classifyError(new HttpError(503, 'Service Unavailable', 1_000))).toEqual({
      retryable: true,
      reason: 'http_5xx',
      retryAfterMs: 1_000,
    });
    expect(classifyError(new HttpError(500, 'Internal Server Error'))).toMatchObject({
      retryable: true,
      reason: 'http_5xx',
    });
  });

  test('HTTP 408 Request Timeout is retryable', () => {
    expect(classifyError(new HttpError(408, 'Request Timeout'))).toMatchObject({ retryable: true });
  });

  test.each([400, 401, 403, 404, 422])(
    'HTTP %i is not retryable and the reason names the status',
    (status) => {
      expect(classifyError(new HttpError(status, 'nope'))).toEqual({
        retryable: false,
        reason: `http_${status}`,
      });
    },
  );

  test('a PermanentError is not retryable, even when its cause would be', () => {
    expect(classifyError(new PermanentError('bad data'))).toEqual({
      retryable: false,
      reason: 'permanent',
    });
    const wrapped = new PermanentError('bad config', { cause: new HttpError(503, 'x') });
    expect(classifyError(wrapped)).toEqual({ retryable: false, reason: 'permanent' });
  });

  test("an Error named TimeoutError is retryable as 'timeout'", () => {
    expect(
      classifyError(namedError('TimeoutError', 'The operation was aborted due to timeout')),
    ).toEqual({
      retryable: true,
      reason: 'timeout',
    });
  });

  test("an Error named AbortError is retryable as 'timeout'", () => {
    expect(classifyError(namedError('AbortError'))).toEqual({ retryable: true, reason: 'timeout' });
  });

  test("TypeError('fetch failed') with cause {code: 'ECONNREFUSED'} is retryable as 'connection'", () => {
    const err = new TypeError('fetch failed', {
      cause: { code: 'ECONNREFUSED', errno: -111, syscall: 'connect' },
    });
    expect(classifyError(err)).toEqual({ retryable: true, reason: 'connection' });
  });

  test('a socket error code on the error itself (ECONNRESET) is retryable as connection', () => {
    expect(
      classifyError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })),
    ).toEqual({
      retryable: true,
      reason: 'connection',
    });
  });

  test('an HttpError found deeper in the cause chain decides the classification', () => {
    const err = new Error('sync failed', {
      cause: new Error('request failed', { cause: new HttpError(404, 'not found') }),
    });
    expect(classifyError(err)).toEqual({ retryable: false, reason: 'http_404' });
  });

  test("a pg error with code 57P01 (admin shutdown) is retryable as 'database'", () => {
    expect(
      classifyError(
        pgError(PgCode.ADMIN_SHUTDOWN, 'terminating connection due to administrator command'),
      ),
    ).toEqual({
      retryable: true,
      reason: 'database',
    });
  });

  test('pg serialization failure 40001 and deadlock 40P01 are retryable as database', () => {
    expect(
      classifyError(pgError(PgCode.SERIALIZATION_FAILURE, 'could not serialize')),
    ).toMatchObject({ reason: 'database' });
    expect(classifyError(pgError(PgCode.DEADLOCK_DETECTED, 'deadlock detected'))).toMatchObject({
      reason: 'database',
    });
  });

  test("a pg unique violation 23505 falls through to unknown (retryable, reason 'unknown')", () => {
    expect(
      classifyError(
        pgError(PgCode.UNIQUE_VIOLATION, 'duplicate key value violates unique constraint'),
      ),
    ).toEqual({
      retryable: true,
      reason: 'unknown',
    });
  });

  test('a plain Error, a string and undefined are retryable as unknown', () => {
    expect(classifyError(new Error('boom'))).toEqual({ retryable: true, reason: 'unknown' });
    expect(classifyError('boom')).toEqual({ retryable: true, reason: 'unknown' });
    expect(classifyError(undefined)).toEqual({ retryable: true, reason: 'unknown' });
  });

  test('a cyclic cause chain terminates', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    Object.defineProperty(a, 'cause', { value: b });
    expect(classifyError(a)).toEqual({ retryable: true, reason: 'unknown' });
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-10-30T17:08:10.000Z');

  test("'2' seconds is 2000 ms", () => {
    expect(parseRetryAfter('2', now)).toBe(2_000);
  });

  test("'0.5' seconds is 500 ms", () => {
    expect(parseRetryAfter('0.5', now)).toBe(500);
  });

  test("'0' is 0 ms and surrounding whitespace is ignored", () => {
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter(' 3 ', now)).toBe(3_000);
  });

  test('an HTTP date 3 s after now is 3000 ms', () => {
    expect(parseRetryAfter('Thu, 30 Oct 2025 17:08:13 GMT', now)).toBe(3_000);
  });

  test('an HTTP date in the past is 0 ms, never negative', () => {
    expect(parseRetryAfter('Thu, 30 Oct 2025 17:00:00 GMT', now)).toBe(0);
  });

  test('garbage is undefined', () => {
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('not a date', now)).toBeUndefined();
  });

  test('null, undefined and the empty string are undefined', () => {
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('', now)).toBeUndefined();
  });
});

describe('toError', () => {
  test('an Error is returned as the same object', () => {
    const e = new TypeError('x');
    expect(toError(e)).toBe(e);
  });

  test('a thrown string becomes an Error with that message', () => {
    const e = toError('went wrong');
    expect(e).toBeInstanceOf(Error);
    expect(e.message).toBe('went wrong');
  });

  test('any other thrown value becomes an Error whose message shows the value', () => {
    expect(toError(42).message).toBe('Non-error thrown: 42');
    expect(toError(null).message).toBe('Non-error thrown: null');
    expect(toError({ a: 1 }).message).toBe('Non-error thrown: [object Object]');
  });
});

describe('HttpError and PermanentError', () => {
  test('carry their names, status and retryAfterMs', () => {
    const h = new HttpError(429, 'slow down', 1_500);
    expect(h).toBeInstanceOf(Error);
    expect([h.name, h.status, h.retryAfterMs, h.message]).toEqual([
      'HttpError',
      429,
      1_500,
      'slow down',
    ]);
    const cause = new Error('root');
    const p = new PermanentError('nope', { cause });
    expect([p.name, p.cause]).toEqual(['PermanentError', cause]);
  });
});

describe('parseRetryAfter with a negative number', () => {
  test('a negative value is not a Retry-After and gives undefined', () => {
    expect(parseRetryAfter('-1')).toBeUndefined();
  });
});

describe('isDatabaseUnavailable', () => {
  const socketError = (code: string) =>
    Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code, syscall: 'connect' });

  test.each(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND'])(
    'a %s socket error is the database being unreachable',
    (code) => {
      expect(isDatabaseUnavailable(socketError(code))).toBe(true);
    },
  );

  test.each([
    PgCode.ADMIN_SHUTDOWN,
    PgCode.CRASH_SHUTDOWN,
    PgCode.CANNOT_CONNECT_NOW,
    PgCode.TOO_MANY_CONNECTIONS,
    '08006',
    '08001',
  ])('SQLSTATE %s is the database being unavailable', (code) => {
    expect(isDatabaseUnavailable(pgError(code, 'terminating connection'))).toBe(true);
  });

  test('the pool acquire timeout and a connection ended under a query count', () => {
    expect(
      isDatabaseUnavailable(
        namedError(
          'KnexTimeoutError',
          'Knex: Timeout acquiring a connection. The pool is probably full.',
        ),
      ),
    ).toBe(true);
    expect(isDatabaseUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(
      isDatabaseUnavailable(
        new AggregateError([socketError('ECONNREFUSED'), socketError('ECONNREFUSED')], ''),
      ),
    ).toBe(true);
  });

  test('a query the database answered with an error, a partner outage wrapped by fetch, and non-errors do not count', () => {
    expect(isDatabaseUnavailable(pgError(PgCode.UNIQUE_VIOLATION, 'duplicate key'))).toBe(false);
    expect(isDatabaseUnavailable(pgError('22P02', 'invalid input syntax'))).toBe(false);
    expect(
      isDatabaseUnavailable(new TypeError('fetch failed', { cause: socketError('ECONNREFUSED') })),
    ).toBe(false);
    expect(isDatabaseUnavailable('ECONNREFUSED')).toBe(false);
  });
});

describe('describeError', () => {
  test('an AggregateError with an empty message is described by its parts', () => {
    const e = new AggregateError(
      [
        new Error('connect ECONNREFUSED ::1:5432'),
        new Error('connect ECONNREFUSED 127.0.0.1:5432'),
      ],
      '',
    );
    expect(describeError(e)).toBe(
      'connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432',
    );
    expect(describeError(new Error('plain'))).toBe('plain');
  });
});
