// The development authorization server on real PostgreSQL: client credentials for partner clients,
// JWT access tokens RabbitMQ understands, discovery and JWKS, and the audit of every request.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import {
  TOKEN_EVENTS,
  classifyFailure,
  presentedClientId,
} from '../services/domains/partner-access/audit.js';
import { partnerScopes } from '../services/domains/partner-access/scopes.js';
import { TokenRequestError, TokenSource } from '../docs/examples/partner-client.js';
import { createTestContext, type TestContext } from './support/context.js';
import { startAuthServer, type TestAuthServer } from './support/auth.js';

let ctx: TestContext;
let auth: TestAuthServer;
let secretA: string;

const scopesOf = (partner: string) =>
  partnerScopes({
    partner,
    commandQueue: `partner.${partner}.commands`,
    vhost: '/',
    resourceServerId: 'rabbitmq',
  });

async function tokenRequest(
  clientId: string,
  secret: string,
  extra: Record<string, string> = {},
  addr?: string,
) {
  const res = await fetch(auth.tokenUrl, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
      ...(addr ? { 'x-forwarded-for': addr } : {}),
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...extra }).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const events = () => ctx.db(TOKEN_EVENTS).orderBy('id');

beforeAll(async () => {
  ctx = await createTestContext('auth');
  auth = await startAuthServer(ctx, { ttlSeconds: 120 });
  await auth.service.clients.ensure({
    partner: 'a',
    clientId: 'partner-a',
    queue: 'partner.a.commands',
  });
  await auth.service.clients.ensure({
    partner: 'b',
    clientId: 'partner-b',
    queue: 'partner.b.commands',
  });
  secretA = await auth.service.clients.rotateSecret('partner-a');
});

afterAll(async () => {
  await auth?.stop();
  await ctx?.close();
});

describe('discovery and keys', () => {
  test('the discovery document names the token endpoint, the JWKS and the client-credentials grant', async () => {
    const res = await fetch(`${auth.issuer}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    const d = (await res.json()) as Record<string, unknown>;
    expect(d).toMatchObject({
      issuer: auth.issuer,
      token_endpoint: auth.tokenUrl,
      jwks_uri: auth.jwksUrl,
    });
    expect(d.grant_types_supported).toEqual(['client_credentials']);
    expect(d.token_endpoint_auth_methods_supported).toContain('client_secret_basic');
    // No browser flows are offered.
    expect(d.response_types_supported).toEqual(['none']);
    expect(d).not.toHaveProperty('end_session_endpoint');
  });

  test('the JWKS publishes the public signing key only', async () => {
    const jwks = (await (await fetch(auth.jwksUrl)).json()) as {
      keys: Array<Record<string, unknown>>;
    };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
    expect(jwks.keys[0]).not.toHaveProperty('d');
    expect(typeof jwks.keys[0]?.kid).toBe('string');
  });
});

describe('client credentials', () => {
  test('a partner gets a JWT for RabbitMQ with its own scopes, verifiable with the JWKS', async () => {
    const { status, body } = await tokenRequest('partner-a', secretA);
    expect({ status, error: body.error_description }).toEqual({ status: 200 });
    expect(body).toMatchObject({
      token_type: 'Bearer',
      expires_in: 120,
      scope: scopesOf('a').join(' '),
    });
    const { payload, protectedHeader } = await jwtVerify(
      String(body.access_token),
      createRemoteJWKSet(new URL(auth.jwksUrl)),
      {
        issuer: auth.issuer,
        audience: 'rabbitmq',
      },
    );
    expect(protectedHeader.alg).toBe('RS256');
    expect(payload).toMatchObject({
      client_id: 'partner-a',
      sub: 'partner-a',
      scope: scopesOf('a').join(' '),
    });
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(120);
  });

  test("asking for a subset narrows the token; another partner's scope is never granted", async () => {
    const [read, write] = scopesOf('a');
    const narrow = await tokenRequest('partner-a', secretA, { scope: String(read) });
    expect(narrow.body.scope).toBe(read);
    const foreign = await tokenRequest('partner-a', secretA, {
      scope: `${String(write)} ${String(scopesOf('b')[0])}`,
    });
    expect(foreign.body.scope).toBe(write);
  });

  test('the example SDK client gets a token, caches it, and reports a refusal with its OAuth error', async () => {
    const tokens = new TokenSource({
      tokenUrl: auth.tokenUrl,
      clientId: 'partner-a',
      clientSecret: secretA,
    });
    const first = await tokens.get();
    expect(await tokens.get()).toBe(first);
    expect(first.refreshAt).toBeLessThan(first.expiresAt);
    tokens.invalidate();
    expect((await tokens.get()).token).not.toBe(first.token);
    const wrong = new TokenSource({
      tokenUrl: auth.tokenUrl,
      clientId: 'partner-a',
      clientSecret: 'not-it',
    });
    await expect(wrong.get()).rejects.toThrow(TokenRequestError);
    await expect(wrong.get()).rejects.toMatchObject({ status: 401, error: 'invalid_client' });
  });
});

describe('the audit of token requests', () => {
  test('every token issued is recorded with client, address, time, scope and token id', async () => {
    await ctx.db(TOKEN_EVENTS).delete();
    const { body } = await tokenRequest('partner-a', secretA);
    const [row] = await events();
    const { payload } = await jwtVerify(
      String(body.access_token),
      createRemoteJWKSet(new URL(auth.jwksUrl)),
    );
    expect(row).toMatchObject({
      client_id: 'partner-a',
      outcome: 'issued',
      grant_type: 'client_credentials',
      scope: scopesOf('a').join(' '),
      token_id: payload.jti,
      source_address: expect.stringMatching(/127\.0\.0\.1/),
      error: null,
    });
    expect(Math.abs(new Date(row.at as string).getTime() - Date.now())).toBeLessThan(10_000);
    expect(new Date(row.expires_at as string).getTime()).toBe((payload.exp ?? 0) * 1000);
  });

  test('unknown client, bad secret, disabled client and a client without a secret are refused and recorded', async () => {
    await ctx.db(TOKEN_EVENTS).delete();
    await auth.service.clients.ensure({
      partner: 'c',
      clientId: 'partner-c',
      queue: 'partner.c.commands',
    });
    const secretC = await auth.service.clients.rotateSecret('partner-c');
    await auth.service.clients.disable('partner-c');

    const answers = [
      await tokenRequest('nobody', 'x'),
      await tokenRequest('partner-a', 'wrong-secret'),
      await tokenRequest('partner-c', secretC),
      await tokenRequest('partner-b', 'none-issued-yet'),
    ];
    for (const a of answers) {
      expect(a).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    }
    expect(answers.every((a) => a.body.access_token === undefined)).toBe(true);
    expect((await events()).map((e) => [e.client_id, e.outcome])).toEqual([
      ['nobody', 'unknown_client'],
      ['partner-a', 'bad_secret'],
      ['partner-c', 'disabled_client'],
      ['partner-b', 'bad_secret'],
    ]);
    expect((await events()).every((e) => e.source_address && e.error && e.token_id === null)).toBe(
      true,
    );
  });

  test('a malformed request is refused with a reason and recorded', async () => {
    await ctx.db(TOKEN_EVENTS).delete();
    const res = await tokenRequest('partner-a', secretA, { grant_type: 'password' });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('unsupported_grant_type');
    const foreign = await tokenRequest('partner-a', secretA, {
      resource: 'https://elsewhere.example',
    });
    expect(foreign.body.error).toBe('invalid_target');
    expect((await events()).map((e) => e.outcome)).toEqual(['invalid_request', 'invalid_request']);
  });

  test('the metric counts requests by client and outcome; guessed client ids share one series', async () => {
    const text = await ctx.metrics.registry.getSingleMetricAsString(
      'hub_auth_token_requests_total',
    );
    expect(text).toMatch(
      /hub_auth_token_requests_total\{client_id="partner-a",outcome="issued"\} [1-9]/,
    );
    expect(text).toMatch(
      /hub_auth_token_requests_total\{client_id="partner-a",outcome="bad_secret"\} [1-9]/,
    );
    expect(text).toMatch(
      /hub_auth_token_requests_total\{client_id="partner-c",outcome="disabled_client"\} 1/,
    );
    expect(text).toMatch(
      /hub_auth_token_requests_total\{client_id="\(unregistered\)",outcome="unknown_client"\} 1/,
    );
    expect(text).not.toContain('nobody');
  });

  test('when the audit cannot be written no token is handed out', async () => {
    await ctx.db.raw(`alter table ${TOKEN_EVENTS} rename to ${TOKEN_EVENTS}_away`);
    try {
      const res = await tokenRequest('partner-a', secretA);
      expect(res.status).toBe(503);
      expect(res.body).toEqual({
        error: 'temporarily_unavailable',
        error_description: expect.any(String),
      });
    } finally {
      await ctx.db.raw(`alter table ${TOKEN_EVENTS}_away rename to ${TOKEN_EVENTS}`);
    }
    expect((await tokenRequest('partner-a', secretA)).status).toBe(200);
  });

  test('events past the retention are deleted', async () => {
    await ctx.db(TOKEN_EVENTS).delete();
    await ctx.db(TOKEN_EVENTS).insert([
      { outcome: 'issued', client_id: 'partner-a', at: ctx.db.raw(`now() - interval '91 days'`) },
      { outcome: 'issued', client_id: 'partner-a' },
    ]);
    expect(await auth.service.audit.purgeOlderThan(90)).toBe(1);
    expect(await events()).toHaveLength(1);
  });
});

describe('partner clients', () => {
  test('ensure is idempotent, follows a renamed queue, and refuses a client id of another partner', async () => {
    const clients = auth.service.clients;
    expect(
      await clients.ensure({ partner: 'a', clientId: 'partner-a', queue: 'partner.a.commands' }),
    ).toEqual({ created: false });
    await clients.ensure({ partner: 'a', clientId: 'partner-a', queue: 'partner.a.v2' });
    expect((await clients.find('partner-a'))?.scopes[0]).toBe('rabbitmq.read:%2F/partner.a.v2');
    await clients.ensure({ partner: 'a', clientId: 'partner-a', queue: 'partner.a.commands' });
    await expect(
      clients.ensure({ partner: 'b', clientId: 'partner-a', queue: 'q' }),
    ).rejects.toThrow(/belongs to partner "a"/);
  });

  test('a rotated secret replaces the old one at once; secrets are stored only as hashes', async () => {
    const clients = auth.service.clients;
    const fresh = await clients.rotateSecret('partner-a');
    expect((await tokenRequest('partner-a', secretA)).status).toBe(401);
    expect((await tokenRequest('partner-a', fresh)).status).toBe(200);
    const row = await clients.find('partner-a');
    expect(row?.secret_hash).toMatch(/^sha256:/);
    expect(row?.secret_hash).not.toContain(fresh);
    secretA = fresh;
  });

  test('a 6,000-character client id is refused 401 invalid_client and recorded clipped, not answered 503', async () => {
    await ctx.db(TOKEN_EVENTS).delete();
    // Random, so PostgreSQL cannot compress it under the index's row limit (~2,700 bytes).
    const res = await tokenRequest(randomBytes(3_000).toString('hex'), 'x');
    expect(res).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    const [event] = await events();
    expect(event?.outcome).toBe('unknown_client');
    expect(String(event?.client_id).length).toBeLessThanOrEqual(200);
  });

  test('a NUL in the client id, the grant type or the body is refused 4xx and recorded, not answered 503', async () => {
    await ctx.db(TOKEN_EVENTS).delete();
    const bodies = [
      'grant_type=a%00b',
      'grant_type=client_credentials&client_id=x%00y&client_secret=s',
      'grant_type=client_credentials&scope=%00',
    ];
    const answered: Array<[string, number | '4xx']> = [];
    for (const body of bodies) {
      const res = await fetch(auth.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
      });
      answered.push([body, res.status >= 400 && res.status < 500 ? '4xx' : res.status]);
    }
    expect(answered).toEqual(bodies.map((b) => [b, '4xx']));
    const basic = (await tokenRequest('x\u0000y', 'secret')).status;
    expect(basic >= 400 && basic < 500 ? '4xx' : basic).toBe('4xx');
    const recorded = await events();
    expect(recorded).toHaveLength(bodies.length + 1);
    for (const e of recorded) expect(JSON.stringify(e)).not.toContain('\\u0000');
  });

  test('endpoints other than the token endpoint answer 4xx to made-up tokens and sessions, never 500', async () => {
    const answered: Array<[string, number | '4xx']> = [];
    for (const [method, p] of [
      ['POST', '/me'],
      ['GET', '/me'],
      ['POST', '/token/introspection'],
      ['POST', '/token/revocation'],
      ['GET', '/auth'],
      ['GET', '/session/end'],
      ['POST', '/reg'],
    ]) {
      const res = await fetch(`${auth.issuer}${p}`, {
        method,
        headers: {
          authorization: 'Bearer made-up-opaque-token',
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: method === 'POST' ? 'token=made-up&client_id=nobody' : undefined,
      });
      answered.push([`${method} ${p}`, res.status >= 400 && res.status < 500 ? '4xx' : res.status]);
    }
    expect(answered.filter(([, status]) => status !== '4xx')).toEqual([]);
  });

  test('the client id of a failed request comes from Basic auth (form-encoded) or the body', () => {
    expect(
      presentedClientId(`Basic ${Buffer.from('a%3Ab:secret').toString('base64')}`, undefined),
    ).toBe('a:b');
    expect(presentedClientId(undefined, 'body-client')).toBe('body-client');
    expect(presentedClientId(undefined, undefined)).toBeNull();
    expect(classifyFailure('invalid_client', undefined)).toBe('unknown_client');
    expect(classifyFailure('invalid_client', { active: false, secret_hash: 'x' })).toBe(
      'disabled_client',
    );
    expect(classifyFailure('invalid_scope', undefined)).toBe('invalid_scope');
  });
});
