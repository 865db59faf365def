// Unit tests for the outbound policy's pure parts: host allow-list, URL refusal, Retry-After clamp
// and the error excerpt.
import { Writable } from 'node:stream';
import { describe, expect, test } from '@jest/globals';
import { loadConfig, outboundEnv } from './config.js';
import { createLogger } from './logger.js';
import { createMetrics } from './metrics.js';
import { clampRetryAfter, excerpt, hostAllowed, OutboundPolicy, urlRefusal } from './outbound.js';

const rules = (allowHttp: boolean, hosts: string[] = []) => ({
  OUTBOUND_ALLOW_HTTP: allowHttp,
  OUTBOUND_ALLOWED_HOSTS: hosts,
});

describe('hostAllowed', () => {
  test('an empty allow-list allows any host', () => {
    expect(hostAllowed('anything.internal', [])).toBe(true);
  });

  test('an exact entry allows that host only, case-insensitively and with a trailing dot', () => {
    expect(
      ['api.allio.example', 'API.Allio.Example', 'api.allio.example.'].map((h) =>
        hostAllowed(h, ['api.allio.example']),
      ),
    ).toEqual([true, true, true]);
    expect(hostAllowed('evil-api.allio.example', ['api.allio.example'])).toBe(false);
  });

  test('*.domain allows its subdomains at any depth but not the domain itself nor a look-alike suffix', () => {
    const allowed = ['*.allio.example'];
    expect(['a.allio.example', 'a.b.allio.example'].map((h) => hostAllowed(h, allowed))).toEqual([
      true,
      true,
    ]);
    expect(
      ['allio.example', 'evilallio.example', 'allio.example.evil.com'].map((h) =>
        hostAllowed(h, allowed),
      ),
    ).toEqual([false, false, false]);
  });
});

describe('urlRefusal', () => {
  test('https is allowed; http only with the development switch; other schemes never', () => {
    expect(urlRefusal(new URL('https://api.allio.example/v1'), rules(false))).toBeUndefined();
    expect(urlRefusal(new URL('http://127.0.0.1:4010'), rules(false))?.code).toBe(
      'outbound_scheme',
    );
    expect(urlRefusal(new URL('http://127.0.0.1:4010'), rules(true))).toBeUndefined();
    expect(urlRefusal(new URL('file:///etc/passwd'), rules(true))?.code).toBe('outbound_scheme');
  });

  test('a host outside the allow-list is refused with its name in the reason', () => {
    const r = urlRefusal(
      new URL('https://kubernetes.default.svc/api'),
      rules(false, ['*.allio.example']),
    );
    expect(r).toEqual({
      code: 'outbound_host',
      message: 'host kubernetes.default.svc is not in OUTBOUND_ALLOWED_HOSTS',
    });
  });
});

describe('clampRetryAfter', () => {
  test('an ask within the maximum is kept and not counted as clamped', () => {
    expect(clampRetryAfter(2_000, 300_000)).toEqual({ ms: 2_000, clamped: false });
    expect(clampRetryAfter(300_000, 300_000)).toEqual({ ms: 300_000, clamped: false });
  });

  test('an ask of years, Infinity or NaN is clamped to the maximum', () => {
    for (const asked of [99_999_999_000, Infinity, Number.NaN]) {
      expect(clampRetryAfter(asked, 300_000)).toEqual({ ms: 300_000, clamped: true });
    }
  });

  test('no header stays undefined; a negative value becomes 0', () => {
    expect(clampRetryAfter(undefined, 300_000)).toEqual({ ms: undefined, clamped: false });
    expect(clampRetryAfter(-5, 300_000)).toEqual({ ms: 0, clamped: false });
  });
});

describe('OutboundPolicy.retryAfterMs', () => {
  test('a clamp is logged once at warn with the partner and the value asked, and counted; an ask within the cap is neither', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    const metrics = createMetrics();
    const policy = new OutboundPolicy(
      loadConfig(outboundEnv, { RETRY_AFTER_MAX_MS: '300000' }),
      createLogger({ level: 'info' }, sink),
      metrics,
    );
    expect(policy.retryAfterMs('allio', '99999999')).toBe(300_000);
    expect(policy.retryAfterMs('allio', '2')).toBe(2_000);
    expect(policy.retryAfterMs('allio', undefined)).toBeUndefined();
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'warn',
        partner: 'allio',
        retryAfter: '99999999',
        askedMs: 99_999_999_000,
        usedMs: 300_000,
      }),
    ]);
    expect(
      await metrics.registry.getSingleMetricAsString('hub_retry_after_clamped_total'),
    ).toContain('hub_retry_after_clamped_total{partner="allio"} 1');
  });
});

describe('excerpt', () => {
  test('keeps short text, folds control characters and cuts long text to the bound with an ellipsis', () => {
    expect(excerpt('  bad\r\nrequest\u0000 ')).toBe('bad request');
    const long = excerpt('x'.repeat(100_000));
    expect(long).toHaveLength(201);
    expect(long.endsWith('…')).toBe(true);
  });
});
