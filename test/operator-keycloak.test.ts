// The operator's partner clients at Keycloak: the registry against a Keycloak in the test that
// speaks the Admin REST API (create, nothing written when nothing changed, a renamed queue, drift
// repaired, disabling, failures and timeouts named, the admin token cached and renewed), and the
// operator end to end reporting OAuthClientReady from it.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import type { AmqpConnectionManager } from 'amqp-connection-manager';
import { pino } from 'pino';
import { parse as parseYaml } from 'yaml';
import { partnerClientRepresentation } from '../services/domains/partner-access/keycloak-realm.js';
import { partnerScopes } from '../services/domains/partner-access/scopes.js';
import { connectAmqp } from '../services/core/amqp.js';
import { loadConfig, ConfigError } from '../services/core/config.js';
import { Registry } from '../services/core/metrics.js';
import { operatorConfig } from '../services/operator/config.js';
import { execute } from '../services/operator/executor.js';
import { KeycloakClientRegistry } from '../services/operator/keycloak-clients.js';
import { createOperator, type Operator } from '../services/operator/operator.js';
import type { Condition, ResourceStatus } from '../services/operator/reconcile.js';
import { createVhost, type TestVhost } from './support/amqp.js';
import { createTestContext, waitFor, type TestContext } from './support/context.js';
import { startFakeKeycloak, type FakeKeycloak } from './support/fake-keycloak.js';
import { startFakeKube, type FakeKube } from './support/fake-kube.js';
import { ROOT } from './support/tools.js';
import { testOutbound } from './support/partner-server.js';

const REALM = 'integration-hub';
const OPERATOR_SECRET = 'operator-secret-5f1c2a9e7b';
const TARGET = { vhost: '/', resourceServerId: 'rabbitmq' };
const DOMOFON = {
  partner: 'domofon-plus',
  clientId: 'domofon-plus',
  queue: 'partner.domofon-plus.commands',
};

let keycloak: FakeKeycloak;
let logLines: string[];

beforeAll(async () => {
  keycloak = await startFakeKeycloak({
    realm: REALM,
    clientId: 'hub-operator',
    clientSecret: OPERATOR_SECRET,
  });
});
afterAll(async () => {
  await keycloak.close();
});

function registry(
  o: { now?: () => number; timeoutMs?: number; secret?: string } = {},
): KeycloakClientRegistry {
  logLines = [];
  const sink = new Writable({
    write: (chunk: Buffer, _enc, done) => {
      logLines.push(chunk.toString());
      done();
    },
  });
  return new KeycloakClientRegistry({
    url: `${keycloak.url}/`,
    realm: REALM,
    clientId: 'hub-operator',
    clientSecret: o.secret ?? OPERATOR_SECRET,
    target: TARGET,
    timeoutMs: o.timeoutMs ?? 5_000,
    logger: pino({ level: 'debug' }, sink),
    now: o.now,
    outbound: testOutbound(),
  });
}

/** A partner of its own per test, so that tests sharing the Keycloak do not see each other's clients. */
let partners = 0;
const newPartner = () => {
  const name = `partner-${++partners}`;
  return { partner: name, clientId: `${name}-client`, queue: `partner.${name}.commands` };
};
const scopesOf = (p: { partner: string; queue: string }) =>
  partnerScopes({ partner: p.partner, commandQueue: p.queue, ...TARGET });

describe('KeycloakClientRegistry', () => {
  afterEach(() => keycloak.clear());

  test('ensureClient creates the client as the realm file describes it, with its two RabbitMQ scopes as its only scopes', async () => {
    const p = newPartner();
    await registry().ensureClient(p);
    const c = keycloak.client(p.clientId)!;
    const desired = partnerClientRepresentation(
      { partner: p.partner, clientId: p.clientId, commandQueue: p.queue },
      TARGET,
    );
    const {
      protocolMappers,
      defaultClientScopes: _d,
      optionalClientScopes: _o,
      ...fields
    } = desired;
    expect(c).toEqual(expect.objectContaining(fields));
    expect(c.protocolMappers.map(({ id: _id, ...m }) => m)).toEqual(protocolMappers);
    expect(keycloak.scopesOf(p.clientId, 'default')).toEqual(scopesOf(p).sort());
    expect(keycloak.scopesOf(p.clientId, 'optional')).toEqual([]);
    expect(keycloak.scopeNames()).toEqual(expect.arrayContaining(scopesOf(p)));
    // Keycloak generated the secret; the SRE reads it there and hands it to the partner.
    expect(c.secret).toMatch(/^[A-Za-z0-9_-]{20,}$/);
  });

  test('a second ensure with nothing changed only reads', async () => {
    const r = registry();
    const p = newPartner();
    await r.ensureClient(p);
    const before = keycloak.writes().length;
    await r.ensureClient(p);
    expect(keycloak.writes().slice(before)).toEqual([]);
  });

  test('a renamed queue replaces the read scope and keeps the write scope', async () => {
    const r = registry();
    const p = newPartner();
    await r.ensureClient(p);
    const renamed = { ...p, queue: `${p.partner}.renamed` };
    await r.ensureClient(renamed);
    expect(keycloak.scopesOf(p.clientId, 'default')).toEqual(scopesOf(renamed).sort());
    expect(scopesOf(renamed)[0]).toBe(`rabbitmq.read:%2F/${p.partner}.renamed`);
    expect(keycloak.scopesOf(p.clientId, 'default')).not.toContain(scopesOf(p)[0]);
  });

  test('drift is repaired: a scope linked by hand is unlinked, a changed mapper and a disabled client are put back, and the secret is never sent back', async () => {
    const r = registry();
    const p = newPartner();
    await r.ensureClient(p);
    await r.removeClient(p);
    keycloak.link(p.clientId, 'profile', 'default');
    keycloak.link(p.clientId, 'email', 'optional');
    const before = keycloak.requests.length;
    // The same client, changed in the console: its audience mapper now names another audience.
    const id = keycloak.client(p.clientId)!.id;
    const audience = keycloak
      .client(p.clientId)!
      .protocolMappers.find((m) => m.protocolMapper === 'oidc-audience-mapper')!;
    const res = await fetch(`${keycloak.url}/realms/${REALM}/protocol/openid-connect/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: 'hub-operator',
        client_secret: OPERATOR_SECRET,
      }),
    });
    const { access_token } = (await res.json()) as { access_token: string };
    await fetch(
      `${keycloak.url}/admin/realms/${REALM}/clients/${id}/protocol-mappers/models/${audience.id}`,
      {
        method: 'PUT',
        headers: { authorization: `Bearer ${access_token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          ...audience,
          config: { ...audience.config, 'included.custom.audience': 'other' },
        }),
      },
    );
    expect(
      keycloak.client(p.clientId)!.protocolMappers.find((m) => m.id === audience.id)?.config[
        'included.custom.audience'
      ],
    ).toBe('other');

    await r.ensureClient(p);
    const c = keycloak.client(p.clientId)!;
    expect(c.enabled).toBe(true);
    expect(
      c.protocolMappers.find((m) => m.id === audience.id)?.config['included.custom.audience'],
    ).toBe('rabbitmq');
    expect(keycloak.scopesOf(p.clientId, 'default')).toEqual(scopesOf(p).sort());
    expect(keycloak.scopesOf(p.clientId, 'optional')).toEqual([]);
    const sent = keycloak.bodies.slice(before).join('\n');
    expect(sent).not.toContain(c.secret);
  });

  test('removeClient disables the client and keeps it; again, or for a client that does not exist, it writes nothing', async () => {
    const r = registry();
    const p = newPartner();
    await r.ensureClient(p);
    const id = keycloak.client(p.clientId)!.id;
    await r.removeClient(p);
    expect(keycloak.client(p.clientId)).toEqual(expect.objectContaining({ id, enabled: false }));
    const before = keycloak.writes().length;
    await r.removeClient(p);
    await r.removeClient({ partner: 'never-registered', clientId: 'never-registered' });
    expect(keycloak.writes().slice(before)).toEqual([]);
  });

  test("a Keycloak 5xx fails the action with the call, the status and Keycloak's error text", async () => {
    keycloak.fail(/^POST \/admin\/realms\/integration-hub\/clients$/, 503, {
      errorMessage: 'database is not available',
    });
    const p = newPartner();
    const outcomes = await execute(
      [{ type: 'ensureOAuthClient', ...p }],
      {
        db: ctx.db,
        topology: { run: () => Promise.reject(new Error('no topology in this test')) },
        oauthClients: registry(),
      },
      { add: () => Promise.resolve(), remove: () => Promise.resolve() },
    );
    expect(outcomes).toEqual([
      expect.objectContaining({
        result: 'failed',
        error: 'Keycloak POST /clients answered 503: database is not available',
      }),
    ]);
    expect(keycloak.client(p.clientId)).toBeUndefined();
  });

  test('a Keycloak that does not answer fails the call after the timeout, naming it', async () => {
    keycloak.stall(/^GET \/admin\/realms\/integration-hub\/client-scopes$/);
    await expect(registry({ timeoutMs: 300 }).ensureClient(newPartner())).rejects.toThrow(
      'Keycloak GET /client-scopes did not answer within 300 ms',
    );
  });

  test('the admin token is requested once, reused until shortly before it expires, then renewed; a revoked one is renewed at once', async () => {
    let now = 1_000_000;
    const r = registry({ now: () => now });
    const p = newPartner();
    const issued = keycloak.tokensIssued();
    await r.ensureClient(p);
    await r.ensureClient(p);
    await r.removeClient(p);
    expect(keycloak.tokensIssued() - issued).toBe(1);
    // The fake's tokens live 300 s; the registry renews 30 s before that.
    now += 269_000;
    await r.ensureClient(p);
    expect(keycloak.tokensIssued() - issued).toBe(1);
    now += 2_000;
    await r.ensureClient(p);
    expect(keycloak.tokensIssued() - issued).toBe(2);
    keycloak.revokeTokens();
    await r.removeClient(p);
    expect(keycloak.tokensIssued() - issued).toBe(3);
    expect(keycloak.client(p.clientId)?.enabled).toBe(false);
  });

  test("a wrong operator secret fails with Keycloak's answer; no secret or token reaches an error or a log line", async () => {
    const wrong = 'wrong-secret-0c9d8e7f';
    await expect(registry({ secret: wrong }).ensureClient(newPartner())).rejects.toThrow(
      "Keycloak refused the operator's token request (client hub-operator, realm integration-hub): 401 Invalid client or Invalid client credentials",
    );
    const r = registry();
    const p = newPartner();
    await r.ensureClient(p);
    await r.removeClient(p);
    const logs = logLines.join('');
    expect(logs).toContain('partner client created at Keycloak');
    for (const secret of [OPERATOR_SECRET, wrong, keycloak.client(p.clientId)!.secret]) {
      expect(logs).not.toContain(secret);
    }
    expect(logs).not.toMatch(/Bearer|access_token/);
  });
});

describe('operator configuration', () => {
  const base = {
    DATABASE_URL: 'postgres://h/db',
    AMQP_URL: 'amqp://h',
    WATCH_NAMESPACE: 'hub',
    POD_NAMESPACE: 'hub',
  };

  test('KEYCLOAK_URL without KEYCLOAK_CLIENT_SECRET stops start-up naming the secret', () => {
    let err: unknown;
    try {
      loadConfig(operatorConfig, { ...base, KEYCLOAK_URL: 'https://sso.example.com' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues).toEqual([
      "KEYCLOAK_CLIENT_SECRET is required when KEYCLOAK_URL is set (the secret of the operator's client at Keycloak)",
    ]);
  });

  test('without KEYCLOAK_URL nothing more is needed; the realm, client and RabbitMQ target have defaults', () => {
    expect(loadConfig(operatorConfig, base)).toEqual(
      expect.objectContaining({
        KEYCLOAK_REALM: 'integration-hub',
        KEYCLOAK_CLIENT_ID: 'hub-operator',
        RABBITMQ_PARTNER_VHOST: '/',
        RABBITMQ_RESOURCE_SERVER_ID: 'rabbitmq',
      }),
    );
    expect(
      loadConfig(operatorConfig, {
        ...base,
        KEYCLOAK_URL: 'https://sso.example.com',
        KEYCLOAK_CLIENT_SECRET: 's',
      }).KEYCLOAK_URL,
    ).toBe('https://sso.example.com');
  });
});

let ctx: TestContext;
let vhost: TestVhost;
let kube: FakeKube;
let amqp: AmqpConnectionManager;
const operators: Operator[] = [];

beforeAll(async () => {
  ctx = await createTestContext('opkeycloak');
  vhost = await createVhost('opkeycloak');
  kube = await startFakeKube();
  amqp = connectAmqp(vhost.url, ctx.logger, { name: 'operator keycloak test' });
});
afterAll(async () => {
  await Promise.all(operators.splice(0).map((o) => o.stop()));
  await amqp.close();
  await kube.close();
  await vhost.close();
  await ctx.close();
});

const condition = (s: unknown, type: string): Condition | undefined =>
  ((s as ResourceStatus | undefined)?.conditions ?? []).find((c) => c.type === type);

describe('operator with Keycloak', () => {
  test('a SmartHomePartner gets its client at Keycloak and OAuthClientReady=True; made inactive, its client is disabled', async () => {
    const op = createOperator({
      kc: kube.kubeConfig(),
      db: ctx.db,
      amqp,
      logger: ctx.logger,
      registry: new Registry(),
      identity: 'op-k',
      watchNamespace: 'hub',
      leaseNamespace: 'hub',
      leaseName: 'hub-operator',
      leaseDurationSeconds: 5,
      resyncMs: 60_000,
      oauthClients: registry(),
    });
    operators.push(op);
    op.start();
    await waitFor(() => op.elector.isLeader(), 10_000, 'leadership');
    const doc = parseYaml(
      await readFile(path.join(ROOT, 'crds/examples/smart-home-partner.yaml'), 'utf8'),
    ) as {
      apiVersion: string;
      kind: string;
      metadata: { name: string };
      spec: Record<string, unknown>;
    };
    kube.apply({ ...doc, metadata: { ...doc.metadata, namespace: 'hub' } }, 'smarthomepartners');
    const ready = await waitFor(
      () => {
        const c = condition(
          kube.get('smarthomepartners', 'hub', DOMOFON.partner)?.status,
          'OAuthClientReady',
        );
        return c?.status === 'True' ? c : undefined;
      },
      10_000,
      'OAuthClientReady=True',
    );
    expect(ready).toEqual(
      expect.objectContaining({
        reason: 'Registered',
        message: 'the partner can obtain access tokens',
      }),
    );
    expect(
      condition(kube.get('smarthomepartners', 'hub', DOMOFON.partner)?.status, 'Ready')?.status,
    ).toBe('True');
    expect(keycloak.client(DOMOFON.clientId)?.enabled).toBe(true);
    expect(keycloak.scopesOf(DOMOFON.clientId, 'default')).toEqual(scopesOf(DOMOFON).sort());

    kube.apply(
      {
        ...doc,
        metadata: { ...doc.metadata, namespace: 'hub' },
        spec: { ...doc.spec, active: false },
      },
      'smarthomepartners',
    );
    const removed = await waitFor(
      () => {
        const c = condition(
          kube.get('smarthomepartners', 'hub', DOMOFON.partner)?.status,
          'OAuthClientReady',
        );
        return c?.reason === 'Removed' ? c : undefined;
      },
      10_000,
      'OAuthClientReady Removed',
    );
    expect(removed.status).toBe('True');
    expect(keycloak.client(DOMOFON.clientId)?.enabled).toBe(false);
  });
});
