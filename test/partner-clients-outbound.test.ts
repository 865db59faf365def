// Every outbound client other than ALLIO (robots, 1C, payment gateway, Keycloak admin) against real
// local servers that misbehave: plain HTTP, foreign hosts, redirects, endless bodies, absurd
// Retry-After. The same policy holds for each: nothing sent where it may not go, nothing followed,
// nothing read beyond the limit, no pause beyond the cap.
import { afterEach, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { pino } from 'pino';
import { loadConfig, outboundEnv } from '../services/core/config.js';
import { HttpError } from '../services/core/errors.js';
import { createMetrics, type Metrics } from '../services/core/metrics.js';
import { OutboundPolicy } from '../services/core/outbound.js';
import { OneCClient } from '../services/domains/kitchen/onec-client.js';
import { PaymentClient } from '../services/domains/kitchen/payment-client.js';
import { RobotsClient } from '../services/domains/kitchen/robots-client.js';
import { KeycloakClientRegistry } from '../services/operator/keycloak-clients.js';
import { selfSignedCertificate, type Certificate } from '../services/simulators/tls.js';
import {
  answer,
  hugeBody,
  startPartnerServer,
  type PartnerServer,
} from './support/partner-server.js';

const logger = pino({ level: 'silent' });
let certificate: Certificate;
let partner: PartnerServer;
let elsewhere: PartnerServer;
let metrics: Metrics;

interface Subject {
  name: string;
  partner: string;
  tls: boolean;
  /** One call of the client against `baseUrl`; it rejects or resolves, never hangs. */
  call(baseUrl: string, outbound: OutboundPolicy): Promise<unknown>;
}

const subjects: Subject[] = [
  {
    name: 'robots',
    partner: 'robots',
    tls: false,
    call: (baseUrl, outbound) =>
      new RobotsClient({
        baseUrl,
        apiKey: 'robots-key-1',
        timeoutMs: 5_000,
        metrics,
        outbound,
      }).status('p-1'),
  },
  {
    name: '1C',
    partner: '1c',
    tls: false,
    call: (baseUrl, outbound) =>
      new OneCClient({
        baseUrl,
        user: 'exchange',
        password: 'secret-1c',
        timeoutMs: 5_000,
        metrics,
        outbound,
      }).exists('Document_X', '00000000-0000-0000-0000-000000000001'),
  },
  {
    name: 'payment gateway',
    partner: 'payment-gateway',
    tls: true,
    call: async (baseUrl, outbound) => {
      const client = new PaymentClient({
        baseUrl,
        apiKey: 'merchant-test-key',
        ca: certificate.cert,
        timeoutMs: 5_000,
        metrics,
        outbound,
      });
      try {
        return await client.findPayments('order-1');
      } finally {
        client.close();
      }
    },
  },
  {
    name: 'Keycloak admin',
    partner: 'keycloak',
    tls: false,
    call: (baseUrl, outbound) =>
      new KeycloakClientRegistry({
        url: baseUrl,
        realm: 'hub',
        clientId: 'hub-operator',
        clientSecret: 'operator-secret',
        timeoutMs: 5_000,
        logger,
        outbound,
        target: { vhost: 'partners', resourceServerId: 'rabbitmq' },
      }).removeClient({ partner: 'p', clientId: 'p-client' }),
  },
];

const policy = (env: Record<string, string> = {}) =>
  new OutboundPolicy(
    loadConfig(outboundEnv, { OUTBOUND_ALLOW_HTTP: 'true', ...env }),
    logger,
    metrics,
  );

beforeAll(async () => {
  certificate = await selfSignedCertificate();
});

describe.each(subjects)('$name client', (s) => {
  beforeEach(async () => {
    metrics = createMetrics();
    partner = await startPartnerServer({ tls: s.tls ? certificate : undefined });
    elsewhere = await startPartnerServer({ tls: s.tls ? certificate : undefined });
  });
  afterEach(async () => {
    await partner.close();
    await elsewhere.close();
  });

  if (!s.tls) {
    test('an http URL is refused without OUTBOUND_ALLOW_HTTP and nothing is sent', async () => {
      await expect(s.call(partner.url, policy({ OUTBOUND_ALLOW_HTTP: 'false' }))).rejects.toThrow(
        /outbound_scheme/,
      );
      expect(partner.requests).toEqual([]);
    });
  }

  test('a host outside OUTBOUND_ALLOWED_HOSTS is refused and nothing is sent', async () => {
    await expect(
      s.call(partner.url, policy({ OUTBOUND_ALLOWED_HOSTS: '*.partner.example' })),
    ).rejects.toThrow(/outbound_host/);
    expect(partner.requests).toEqual([]);
  });

  test('a redirect is refused as a permanent failure and the other server receives nothing', async () => {
    partner.handle(answer(302, {}, { location: `${elsewhere.url}/steal` }));
    await expect(s.call(partner.url, policy())).rejects.toThrow(/outbound_redirect/);
    expect(partner.requests.length).toBeGreaterThan(0);
    expect(elsewhere.requests).toEqual([]);
  });

  test('a 50 MB answer is cut off at OUTBOUND_MAX_RESPONSE_BYTES', async () => {
    partner.handle(hugeBody(50 * 1024 * 1024));
    await expect(
      s.call(partner.url, policy({ OUTBOUND_MAX_RESPONSE_BYTES: String(1024 * 1024) })),
    ).rejects.toThrow(/outbound_response_too_large/);
    expect(partner.bytesSent).toBeLessThan(12 * 1024 * 1024);
  });

  if (s.partner !== 'keycloak') {
    test('a 503 with Retry-After 99999999 is retried after at most RETRY_AFTER_MAX_MS, clamped and counted', async () => {
      partner.handle(answer(503, { error: 'x'.repeat(10_000) }, { 'retry-after': '99999999' }));
      const err = await s.call(partner.url, policy({ RETRY_AFTER_MAX_MS: '60000' })).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(HttpError);
      expect((err as HttpError).retryAfterMs).toBe(60_000);
      // Only a short excerpt of the partner's body reaches the error (and so last_error).
      expect((err as HttpError).message.length).toBeLessThan(400);
      expect(
        await metrics.registry.getSingleMetricAsString('hub_retry_after_clamped_total'),
      ).toContain(`partner="${s.partner}"} 1`);
    });
  }
});
