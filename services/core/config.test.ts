// Unit tests for environment configuration: required variables, URL schemes, defaults, coercion.
import { describe, expect, test } from '@jest/globals';
import {
  allioEnv,
  baseEnv,
  ConfigError,
  databaseEnv,
  httpEnv,
  httpServerEnv,
  loadConfig,
  outboundEnv,
  redisEnv,
} from './config.js';

/** The variables of a service with a database and Redis, as the services compose them. */
const serviceEnv = baseEnv.merge(databaseEnv).merge(redisEnv);

const validService = {
  DATABASE_URL: 'postgres://hub:secret@db:5432/hub',
  REDIS_URL: 'redis://redis:6379/0',
};

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (thrown) {
    if (thrown instanceof ConfigError) return thrown;
    throw thrown;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig with serviceEnv', () => {
  test('names both missing DATABASE_URL and REDIS_URL in the ConfigError message', () => {
    const err = configErrorOf(() => loadConfig(serviceEnv, {}));
    expect(err.name).toBe('ConfigError');
    expect(err.message).toContain('DATABASE_URL is required');
    expect(err.message).toContain('REDIS_URL is required');
    expect(err.issues).toHaveLength(2);
  });

  test('a DATABASE_URL with the wrong scheme is named with the accepted schemes', () => {
    const err = configErrorOf(() =>
      loadConfig(serviceEnv, { ...validService, DATABASE_URL: 'mysql://db:3306/hub' }),
    );
    expect(err.issues).toEqual(['DATABASE_URL must be a URL with scheme postgres: or postgresql:']);
  });

  test('a REDIS_URL that is not a URL at all is named', () => {
    const err = configErrorOf(() =>
      loadConfig(serviceEnv, { ...validService, REDIS_URL: 'redis-host:6379' }),
    );
    expect(err.message).toContain('REDIS_URL must be a URL with scheme redis: or rediss:');
  });

  test('empty strings count as missing', () => {
    const err = configErrorOf(() =>
      loadConfig(serviceEnv, { DATABASE_URL: '', REDIS_URL: '', PORT: '' }),
    );
    expect(err.issues).toEqual(
      expect.arrayContaining(['DATABASE_URL is required', 'REDIS_URL is required']),
    );
    expect(err.issues).toHaveLength(2);
  });

  test('an empty optional variable falls back to its default instead of failing', () => {
    expect(loadConfig(serviceEnv, { ...validService, LOG_LEVEL: '', PORT: '' })).toMatchObject({
      LOG_LEVEL: 'info',
      PORT: 8080,
    });
  });

  test('applies the defaults: PORT 8080, DATABASE_SCHEMA public, LOG_LEVEL info', () => {
    expect(loadConfig(serviceEnv, validService)).toMatchObject({
      ...validService,
      PORT: 8080,
      LOG_LEVEL: 'info',
      DATABASE_SCHEMA: 'public',
      REDIS_KEY_PREFIX: 'hub:',
    });
  });

  test('accepts postgresql: and rediss: schemes', () => {
    const cfg = loadConfig(serviceEnv, {
      DATABASE_URL: 'postgresql://db/hub',
      REDIS_URL: 'rediss://cache:6380',
    });
    expect([cfg.DATABASE_URL, cfg.REDIS_URL]).toEqual([
      'postgresql://db/hub',
      'rediss://cache:6380',
    ]);
  });

  test('numbers given as text are coerced', () => {
    const cfg = loadConfig(serviceEnv, { ...validService, PORT: '3000', DATABASE_POOL_MAX: '25' });
    expect(cfg.PORT).toBe(3000);
    expect(cfg.DATABASE_POOL_MAX).toBe(25);
  });

  test('an out-of-range or non-numeric PORT is named', () => {
    expect(
      configErrorOf(() => loadConfig(serviceEnv, { ...validService, PORT: '70000' })).message,
    ).toContain('PORT');
    expect(
      configErrorOf(() => loadConfig(serviceEnv, { ...validService, PORT: 'http' })).message,
    ).toContain('PORT');
  });

  test('an unknown LOG_LEVEL and an upper-case DATABASE_SCHEMA are named', () => {
    const err = configErrorOf(() =>
      loadConfig(serviceEnv, { ...validService, LOG_LEVEL: 'verbose', DATABASE_SCHEMA: 'Hub' }),
    );
    expect(err.message).toContain('LOG_LEVEL');
    expect(err.message).toContain('DATABASE_SCHEMA must be a lower-case SQL identifier');
  });

  test('unrelated environment variables are ignored', () => {
    expect(
      loadConfig(serviceEnv, { ...validService, HOME: '/root', PATH: '/bin' }),
    ).not.toHaveProperty('HOME');
  });
});

describe('loadConfig with allioEnv', () => {
  test("ALLIO_DELETION_TIME '25:00' is rejected with the variable named", () => {
    const err = configErrorOf(() => loadConfig(allioEnv, { ALLIO_DELETION_TIME: '25:00' }));
    expect(err.issues).toEqual(['ALLIO_DELETION_TIME must be HH:MM (UTC)']);
  });

  test.each([['3:00'], ['03:60'], ['0300'], ['24:00']])(
    'ALLIO_DELETION_TIME %j is rejected',
    (value) => {
      expect(() => loadConfig(allioEnv, { ALLIO_DELETION_TIME: value })).toThrow(
        'ALLIO_DELETION_TIME',
      );
    },
  );

  test('ALLIO_DELETION_TIME 23:59 is accepted', () => {
    expect(loadConfig(allioEnv, { ALLIO_DELETION_TIME: '23:59' }).ALLIO_DELETION_TIME).toBe(
      '23:59',
    );
  });

  test('applies the ALLIO defaults: 2 requests/s with 25 ms safety, deletion sweep at 03:00 UTC', () => {
    // Only the documented defaults are pinned; tuning knobs (attempts, timeouts) are still moving.
    const cfg = loadConfig(allioEnv, {});
    expect(cfg).toMatchObject({
      EGRESS_IP: 'default',
      ALLIO_RATE_PER_SECOND: 2,
      ALLIO_RATE_SAFETY_MS: 25,
      ALLIO_DELETION_TIME: '03:00',
      SECRETS_DIR: '/var/run/secrets/integration-hub',
    });
    expect(Number.isInteger(cfg.ALLIO_MAX_ATTEMPTS)).toBe(true);
  });

  test('numbers are coerced', () => {
    const cfg = loadConfig(allioEnv, {
      ALLIO_RATE_PER_SECOND: '3',
      ALLIO_MAX_ATTEMPTS: '3',
      ALLIO_RATE_SAFETY_MS: '0',
    });
    expect([cfg.ALLIO_RATE_PER_SECOND, cfg.ALLIO_MAX_ATTEMPTS, cfg.ALLIO_RATE_SAFETY_MS]).toEqual([
      3, 3, 0,
    ]);
  });

  test('a fractional rate and a negative safety are refused: the quota counts whole requests in a second', () => {
    const err = configErrorOf(() =>
      loadConfig(allioEnv, { ALLIO_RATE_PER_SECOND: '2.5', ALLIO_RATE_SAFETY_MS: '-1' }),
    );
    expect(err.issues.map((i) => i.split(' ')[0]).sort()).toEqual([
      'ALLIO_RATE_PER_SECOND',
      'ALLIO_RATE_SAFETY_MS',
    ]);
  });

  test('a zero rate, a fractional attempt count and a too-short timeout are each named', () => {
    const err = configErrorOf(() =>
      loadConfig(allioEnv, {
        ALLIO_RATE_PER_SECOND: '0',
        ALLIO_MAX_ATTEMPTS: '1.5',
        ALLIO_HTTP_TIMEOUT_MS: '50',
      }),
    );
    expect(err.issues.map((i) => i.split(' ')[0])).toEqual(
      expect.arrayContaining([
        'ALLIO_RATE_PER_SECOND',
        'ALLIO_MAX_ATTEMPTS',
        'ALLIO_HTTP_TIMEOUT_MS',
      ]),
    );
  });
});

describe('loadConfig with httpEnv', () => {
  test('HTTP_BODY_LIMIT_BYTES defaults to 256 KiB and rejects values below 1 KiB', () => {
    expect(loadConfig(httpEnv, {}).HTTP_BODY_LIMIT_BYTES).toBe(256 * 1024);
    expect(() => loadConfig(httpEnv, { HTTP_BODY_LIMIT_BYTES: '100' })).toThrow(
      'HTTP_BODY_LIMIT_BYTES',
    );
  });
});

describe('loadConfig with httpServerEnv', () => {
  test('every HTTP server gets bounded timeouts and a connection cap by default, and a zero (no limit) is refused', () => {
    expect(loadConfig(httpServerEnv, {})).toEqual({
      HTTP_HEADERS_TIMEOUT_MS: 10_000,
      HTTP_REQUEST_TIMEOUT_MS: 30_000,
      HTTP_KEEP_ALIVE_TIMEOUT_MS: 65_000,
      HTTP_MAX_CONNECTIONS: 10_000,
    });
    for (const name of Object.keys(httpServerEnv.shape)) {
      expect(() => loadConfig(httpServerEnv, { [name]: '0' })).toThrow(name);
    }
  });
});

describe('blank values', () => {
  test('a value of only spaces counts as missing and is named', () => {
    expect(() =>
      loadConfig(serviceEnv, { DATABASE_URL: '  ', REDIS_URL: 'redis://127.0.0.1:6379' }),
    ).toThrow(/DATABASE_URL is required/);
  });
});

describe('loadConfig with outboundEnv', () => {
  test('defaults to https only, any host, 4 MiB answers and a 5-minute Retry-After ceiling', () => {
    expect(loadConfig(outboundEnv, {})).toEqual({
      OUTBOUND_ALLOW_HTTP: false,
      OUTBOUND_ALLOWED_HOSTS: [],
      OUTBOUND_MAX_RESPONSE_BYTES: 4 * 1024 * 1024,
      RETRY_AFTER_MAX_MS: 300_000,
    });
  });

  test('the allow-list is a comma list, trimmed and lower-cased; a malformed entry or a ceiling over an hour is named', () => {
    expect(
      loadConfig(outboundEnv, { OUTBOUND_ALLOWED_HOSTS: ' API.allio.example , *.kitchen.example ' })
        .OUTBOUND_ALLOWED_HOSTS,
    ).toEqual(['api.allio.example', '*.kitchen.example']);
    const err = configErrorOf(() =>
      loadConfig(outboundEnv, {
        OUTBOUND_ALLOWED_HOSTS: 'https://evil.example/',
        RETRY_AFTER_MAX_MS: '3600001',
      }),
    );
    expect(err.issues.map((i) => i.split(' ')[0]!.split('.')[0])).toEqual(
      expect.arrayContaining(['OUTBOUND_ALLOWED_HOSTS', 'RETRY_AFTER_MAX_MS']),
    );
  });
});
