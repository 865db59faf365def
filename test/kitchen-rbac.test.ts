// RBAC on the kitchen API over real HTTP: each role reaches exactly its endpoints, unauthenticated
// and revoked callers get 401, and a route that names no permission is open to no one.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createApiKey, revokeApiKey } from '../services/core/auth/api-keys.js';
import { guardRoutes } from '../services/core/auth/rbac.js';
import { createHttpServer } from '../services/core/http.js';
import { BORSCHT } from '../services/hub/demo-cards.js';
import { startKitchenStack, type KitchenStack } from './support/kitchen.js';

let s: KitchenStack;
const ORDER = '00000000-0000-4000-8000-000000000001';

beforeAll(async () => {
  s = await startKitchenStack('krbac');
});
afterAll(async () => {
  await s?.close();
});

type Role = 'tenant' | 'operator' | 'admin';
const ENDPOINTS: {
  method: string;
  path: string;
  body?: unknown;
  xml?: boolean;
  allowed: Role[];
}[] = [
  { method: 'GET', path: '/v1/kitchen/menu', allowed: ['tenant', 'operator', 'admin'] },
  {
    method: 'POST',
    path: '/v1/kitchen/orders',
    body: { items: [{ dishId: 'borscht', quantity: 1 }] },
    allowed: ['tenant'],
  },
  {
    method: 'POST',
    path: `/v1/kitchen/orders/${ORDER}/payment`,
    body: { cardToken: 'tok_abcdefgh1234' },
    allowed: ['tenant'],
  },
  { method: 'GET', path: '/v1/kitchen/orders', allowed: ['tenant', 'operator'] },
  { method: 'GET', path: `/v1/kitchen/orders/${ORDER}`, allowed: ['tenant', 'operator'] },
  { method: 'GET', path: '/v1/kitchen/stock', allowed: ['operator', 'admin'] },
  { method: 'GET', path: '/v1/kitchen/tech-cards/borscht', allowed: ['operator', 'admin'] },
  {
    method: 'PUT',
    path: '/v1/kitchen/tech-cards/borscht',
    body: BORSCHT,
    xml: true,
    allowed: ['admin'],
  },
];

async function as(role: Role | 'nobody', e: (typeof ENDPOINTS)[number]) {
  const auth =
    role === 'tenant'
      ? { token: await s.idp.token('tenant-rbac') }
      : role === 'operator'
        ? { apiKey: s.operatorKey }
        : role === 'admin'
          ? { apiKey: s.adminKey }
          : {};
  return s.call(e.method, e.path, {
    ...auth,
    body: e.body,
    headers: e.xml ? { 'content-type': 'application/xml' } : {},
  });
}

describe('kitchen RBAC', () => {
  test('each role is allowed only its endpoints; the others answer 403 forbidden', async () => {
    const seen: string[] = [];
    for (const e of ENDPOINTS) {
      for (const role of ['tenant', 'operator', 'admin'] as const) {
        const r = await as(role, e);
        const verdict =
          r.status === 403 && r.body?.error?.code === 'forbidden'
            ? 'denied'
            : r.status === 401
              ? 'unauthenticated'
              : 'allowed';
        seen.push(`${e.method} ${e.path} ${role}: ${verdict}`);
      }
    }
    const expected = ENDPOINTS.flatMap((e) =>
      (['tenant', 'operator', 'admin'] as const).map(
        (role) =>
          `${e.method} ${e.path} ${role}: ${e.allowed.includes(role) ? 'allowed' : 'denied'}`,
      ),
    );
    expect(seen).toEqual(expected);
  });

  test('a call without credentials, with a forged token or with a revoked key gets 401', async () => {
    for (const e of ENDPOINTS) expect((await as('nobody', e)).status).toBe(401);
    const forged = await s.call('GET', '/v1/kitchen/menu', {
      token: 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
    });
    expect(forged.body.error.code).toBe('invalid_token');
    const { id, key } = await createApiKey(s.ctx.db, 'old terminal', ['kitchen-operator']);
    expect((await s.call('GET', '/v1/kitchen/stock', { apiKey: key })).status).toBe(200);
    await revokeApiKey(s.ctx.db, id);
    const revoked = await s.call('GET', '/v1/kitchen/stock', { apiKey: key });
    expect(revoked).toMatchObject({ status: 401, body: { error: { code: 'invalid_api_key' } } });
  });

  test("a tenant token that names kitchen-admin in `roles`, `realm_access.roles` or another client's roles is refused 403 on staff routes", async () => {
    const forged = [
      await s.idp.issue('tenant-forger', { roles: ['kitchen-admin', 'kitchen-operator'] }),
      await s.idp.issue('tenant-forger', {
        roles: [],
        claims: { realm_access: { roles: ['kitchen-admin', 'kitchen-operator'] } },
      }),
      await s.idp.issue('tenant-forger', {
        roles: [],
        claims: { resource_access: { 'other-app': { roles: ['kitchen-admin'] } } },
      }),
    ];
    for (const token of forged) {
      const write = await s.call('PUT', '/v1/kitchen/tech-cards/borscht', {
        token,
        body: BORSCHT,
        headers: { 'content-type': 'application/xml' },
      });
      expect(write).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
      expect((await s.call('GET', '/v1/kitchen/stock', { token })).status).toBe(403);
      // The tenant part of the token still works.
      expect((await s.call('GET', '/v1/kitchen/menu', { token })).status).toBe(200);
    }
  });

  test("a kitchen-admin client role of the hub's own audience (resource_access) grants the staff routes", async () => {
    const token = await s.idp.issue('back-office-user', {
      roles: [],
      clientRoles: ['kitchen-admin'],
    });
    expect((await s.call('GET', '/v1/kitchen/stock', { token })).status).toBe(200);
    const write = await s.call('PUT', '/v1/kitchen/tech-cards/borscht', {
      token,
      body: BORSCHT,
      headers: { 'content-type': 'application/xml' },
    });
    expect(write.status).toBe(200);
  });

  test('a guarded route that names no permission is refused to every role (deny by default)', async () => {
    const app = createHttpServer({ logger: s.ctx.logger, metrics: s.ctx.metrics, readiness: [] });
    guardRoutes(app, {
      prefix: '/v1/kitchen/',
      table: { 'menu:read': ['kitchen-admin'] },
      db: s.ctx.db,
      authenticator: s.idp.authenticator,
    });
    app.get('/v1/kitchen/forgotten', async () => ({ ok: true }));
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const r = await fetch(`${base}/v1/kitchen/forgotten`, {
        headers: { 'x-api-key': s.adminKey },
      });
      expect(r.status).toBe(403);
      expect(await r.json()).toMatchObject({
        error: { code: 'forbidden', details: { required: 'none (route not open to anyone)' } },
      });
    } finally {
      await app.close();
    }
  });
});
