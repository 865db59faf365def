// Tenant token verification over real HTTP and the real WebSocket upgrade: a token without `exp` is
// refused, and an identity provider whose JWKS hangs, fails or cannot be reached is an outage
// (503 `identity_provider_unavailable` with Retry-After), never a 401 that sends the user to sign in.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { Writable } from 'node:stream';
import { guardRoutes } from '../services/core/auth/rbac.js';
import { createLogger, type Logger } from '../services/core/logger.js';
import { TenantJwtAuthenticator } from '../services/core/auth/tenant-jwt.js';
import { createHttpServer } from '../services/core/http.js';
import { freePort } from '../services/core/net.js';
import { EventSockets } from '../services/api/events-ws.js';
import { smartHomeMetrics } from '../services/domains/smart-home/metrics.js';
import { startTenantIdp, type TenantIdp } from '../services/simulators/tenant-idp/server.js';
import { createTestContext, REDIS_URL, type TestContext } from './support/context.js';
import { track } from './support/leaks.js';

const JWKS_TIMEOUT_MS = 300;

let ctx: TestContext;
let idp: TenantIdp;
let jwks: Server;
let jwksBase: string;
const untrackJwks = track('misbehaving JWKS server');

beforeAll(async () => {
  ctx = await createTestContext('tauth');
  idp = await startTenantIdp();
  // A JWKS endpoint that misbehaves as an identity provider in trouble does.
  jwks = createServer((req, res) => {
    if (req.url === '/hang') {
      return void setTimeout(() => res.end('{"keys":[]}'), JWKS_TIMEOUT_MS * 10).unref();
    }
    res
      .writeHead(500, { 'content-type': 'text/plain' })
      .end('internal error at keycloak-0.keycloak.svc.cluster.local');
  });
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  jwksBase = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}`;
});
afterAll(async () => {
  jwks?.closeAllConnections();
  await new Promise<void>((resolve) => (jwks ? jwks.close(() => resolve()) : resolve()));
  untrackJwks();
  await idp?.close();
  await ctx?.close();
});

interface Probe {
  base: string;
  close(): Promise<void>;
}

/** A guarded route and the tenant WebSocket, verifying tokens against `jwksUrl`. */
async function startProbe(
  jwksUrl: string,
  o: { logger?: Logger; rolesClient?: string } = {},
): Promise<Probe> {
  const authenticator = new TenantJwtAuthenticator(
    {
      TENANT_JWT_ISSUER: idp.issuer,
      TENANT_JWKS_URL: jwksUrl,
      TENANT_JWT_AUDIENCE: idp.audience,
      TENANT_JWKS_TIMEOUT_MS: JWKS_TIMEOUT_MS,
      TENANT_JWT_ROLES_CLIENT: o.rolesClient,
    },
    { logger: o.logger ?? ctx.logger },
  );
  const app = createHttpServer({ logger: ctx.logger, metrics: ctx.metrics, readiness: [] });
  guardRoutes(app, {
    prefix: '/v1/probe/',
    table: { 'probe:read': ['tenant'] },
    db: ctx.db,
    authenticator,
  });
  app.get('/v1/probe/me', { config: { permission: 'probe:read' } }, async (req) => ({
    caller: req.caller,
  }));
  const subscriber = new Redis(REDIS_URL);
  const sockets = new EventSockets({
    authenticator,
    subscriber,
    keyPrefix: ctx.keyPrefix,
    logger: ctx.logger,
    metrics: smartHomeMetrics(ctx.metrics.registry),
    heartbeatMs: 5_000,
    maxSocketsPerTenant: 5,
    maxBufferedBytes: 1024 * 1024,
  });
  sockets.attach(app.server);
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  const untrack = track('tenant auth probe');
  return {
    base,
    async close() {
      await sockets.close();
      await app.close();
      subscriber.disconnect();
      untrack();
    },
  };
}

async function rest(base: string, token: string) {
  const res = await fetch(`${base}/v1/probe/me`, { headers: { authorization: `Bearer ${token}` } });
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    body: (await res.json()) as {
      error?: { code: string; message: string };
      caller?: { roles: string[] };
    },
  };
}

/** A raw WebSocket upgrade; resolves with the refusal (or 101). */
function upgrade(
  base: string,
  token: string,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/v1/events`, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        authorization: `Bearer ${token}`,
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('tenant token claims', () => {
  test('a token without `exp` is refused with 401 invalid_token on REST and on the WebSocket upgrade', async () => {
    const probe = await startProbe(idp.jwksUrl);
    try {
      const token = await idp.issue('tenant-forever', { withoutExpiry: true });
      const r = await rest(probe.base, token);
      expect(r).toMatchObject({ status: 401, body: { error: { code: 'invalid_token' } } });
      expect(r.body.error?.message).toMatch(/exp/);
      const ws = await upgrade(probe.base, token);
      expect(ws.status).toBe(401);
      expect(JSON.parse(ws.body)).toMatchObject({ error: { code: 'invalid_token' } });
      // The same provider's token with an expiry passes.
      expect((await rest(probe.base, await idp.issue('tenant-forever'))).status).toBe(200);
    } finally {
      await probe.close();
    }
  });
});

describe('staff roles from the token', () => {
  test("only the client roles of TENANT_JWT_ROLES_CLIENT count when it is set; the audience's and the realm's do not", async () => {
    const probe = await startProbe(idp.jwksUrl, { rolesClient: 'integration-hub-staff' });
    try {
      const token = await idp.issue('staff-user', {
        roles: ['kitchen-operator'],
        clientRoles: ['kitchen-operator'],
        claims: {
          realm_access: { roles: ['kitchen-operator'] },
          resource_access: {
            'integration-hub-staff': { roles: ['kitchen-admin'] },
            [idp.audience]: { roles: ['kitchen-operator'] },
          },
        },
      });
      expect((await rest(probe.base, token)).body.caller?.roles).toEqual([
        'tenant',
        'kitchen-admin',
      ]);
    } finally {
      await probe.close();
    }
  });
});

describe('identity provider outage', () => {
  const outages: [string, () => Promise<string>][] = [
    ['a JWKS endpoint that does not answer within the timeout', async () => `${jwksBase}/hang`],
    ['a JWKS endpoint that answers 500', async () => `${jwksBase}/fail`],
    [
      'a JWKS endpoint that refuses connections',
      async () => `http://127.0.0.1:${await freePort()}/jwks`,
    ],
  ];

  test.each(outages)(
    '%s: REST answers 503 identity_provider_unavailable with Retry-After, not 401',
    async (_what, url) => {
      const probe = await startProbe(await url());
      try {
        const started = Date.now();
        const r = await rest(probe.base, await idp.issue('tenant-outage'));
        expect(r).toMatchObject({
          status: 503,
          body: { error: { code: 'identity_provider_unavailable' } },
        });
        expect(Number(r.retryAfter)).toBeGreaterThan(0);
        // Nothing of the provider's own answer reaches the caller.
        expect(JSON.stringify(r.body)).not.toMatch(
          /keycloak|cluster\.local|ECONNREFUSED|fetch failed/,
        );
        expect(Date.now() - started).toBeLessThan(JWKS_TIMEOUT_MS * 5);
      } finally {
        await probe.close();
      }
    },
  );

  test.each(outages)(
    '%s: the WebSocket upgrade is refused 503 identity_provider_unavailable with Retry-After',
    async (_what, url) => {
      const probe = await startProbe(await url());
      try {
        const ws = await upgrade(probe.base, await idp.issue('tenant-outage'));
        expect(ws.status).toBe(503);
        expect(Number(ws.headers['retry-after'])).toBeGreaterThan(0);
        expect(JSON.parse(ws.body)).toMatchObject({
          error: { code: 'identity_provider_unavailable' },
        });
      } finally {
        await probe.close();
      }
    },
  );

  test('operators see the outage in the log once per interval, not once per refused request', async () => {
    const lines: string[] = [];
    const logger = createLogger(
      { level: 'info', name: 'api' },
      new Writable({
        write(chunk, _e, cb) {
          lines.push(String(chunk));
          cb();
        },
      }),
    );
    const probe = await startProbe(`${jwksBase}/fail`, { logger });
    try {
      for (const tenant of ['a', 'b', 'c']) {
        expect((await rest(probe.base, await idp.issue(`tenant-${tenant}`))).status).toBe(503);
      }
      const outage = lines.filter((l) => l.includes('identity provider unavailable'));
      expect(outage).toHaveLength(1);
      expect(outage[0]).toContain(`${jwksBase}/fail`);
    } finally {
      await probe.close();
    }
  });

  test('a token signed with a key the provider does not publish is still 401 invalid_token', async () => {
    const other = await startTenantIdp();
    const probe = await startProbe(idp.jwksUrl);
    try {
      // Same issuer and audience claims, but another provider's signing key (an unknown `kid`).
      const foreign = await other.issue('tenant-forged', { claims: { iss: idp.issuer } });
      expect(await rest(probe.base, foreign)).toMatchObject({
        status: 401,
        body: { error: { code: 'invalid_token' } },
      });
    } finally {
      await probe.close();
      await other.close();
    }
  });
});
