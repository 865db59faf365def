// The partners' Keycloak realm: the committed file is what `hub keycloak-realm -f examples/` prints
// (so it cannot drift from the partner resources), it has the shape Keycloak's import reads, every
// partner client grants exactly its RabbitMQ scopes with the RabbitMQ audience, it holds
// placeholders and never a secret, and the kustomization serves it as a ConfigMap.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, test } from '@jest/globals';
import { z } from 'zod';
import {
  keycloakRealm,
  OPERATOR_CLIENT_ID,
  partnerSecretVariable,
  realmFileText,
  type KeycloakRealm,
} from '../../services/domains/partner-access/keycloak-realm.js';
import { partnerScopes } from '../../services/domains/partner-access/scopes.js';
import { validateResources } from '../../services/cli/apply.js';
import { readResourceFiles } from '../../services/cli/resource-files.js';
import {
  smartHomePartnerResource,
  type SmartHomePartnerResource,
} from '../../services/contracts/smart-home-partner.js';
import { realmSecretVariables } from '../support/keycloak-realm.js';
import { parseYamlDocs } from '../support/kube-schemas.js';
import { kubectl, mustRun, ROOT } from '../support/tools.js';

const exec = promisify(execFile);
const REALM_FILE = path.join(ROOT, 'k8s/keycloak/realm-integration-hub.json');
const DEFAULTS = {
  realm: 'integration-hub',
  vhost: '/',
  resourceServerId: 'rabbitmq',
  accessTokenLifespanSeconds: 300,
};

const strings = z.record(z.string());
/** RFC 6749 scope-token characters, which Keycloak also requires of client scope names. */
const scopeName = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/);
const placeholderSecret = z
  .string()
  .regex(/^\$\{[A-Z][A-Z0-9_]*\}$/, 'must be a ${VARIABLE} placeholder, never a secret');

/** The fields Keycloak's realm import reads from this file, with the types it requires. */
const realmSchema = z
  .object({
    realm: z.string().min(1),
    enabled: z.literal(true),
    sslRequired: z.enum(['external', 'all', 'none']),
    accessTokenLifespan: z.number().int().positive(),
    bruteForceProtected: z.boolean(),
    eventsEnabled: z.boolean(),
    eventsExpiration: z.number().int().positive(),
    eventsListeners: z.array(z.string()),
    enabledEventTypes: z.array(z.string()),
    adminEventsEnabled: z.boolean(),
    adminEventsDetailsEnabled: z.boolean(),
    clientScopes: z.array(
      z
        .object({ name: scopeName, protocol: z.literal('openid-connect'), attributes: strings })
        .passthrough(),
    ),
    defaultDefaultClientScopes: z.array(z.string()),
    defaultOptionalClientScopes: z.array(z.string()),
    clients: z.array(
      z
        .object({
          clientId: z.string().min(1),
          enabled: z.boolean(),
          protocol: z.literal('openid-connect'),
          publicClient: z.boolean(),
          clientAuthenticatorType: z.string(),
          secret: placeholderSecret,
          attributes: strings,
          protocolMappers: z.array(
            z
              .object({
                name: z.string().min(1),
                protocol: z.literal('openid-connect'),
                protocolMapper: z.string().min(1),
                config: strings,
              })
              .passthrough(),
          ),
          defaultClientScopes: z.array(z.string()),
          optionalClientScopes: z.array(z.string()),
        })
        .passthrough(),
    ),
    users: z.array(
      z
        .object({
          username: z.string().min(1),
          enabled: z.boolean(),
          serviceAccountClientId: z.string(),
          clientRoles: z.record(z.array(z.string())),
        })
        .strict(),
    ),
  })
  .passthrough();

let fileText: string;
let realm: KeycloakRealm;
let partners: SmartHomePartnerResource[];

async function examplePartners(): Promise<SmartHomePartnerResource[]> {
  const { valid, problems } = validateResources(
    await readResourceFiles([path.join(ROOT, 'examples')], () =>
      Promise.reject(new Error('no stdin')),
    ),
  );
  expect(problems).toEqual([]);
  return valid.flatMap((v) =>
    v.resource.kind === 'SmartHomePartner' ? [smartHomePartnerResource.parse(v.resource)] : [],
  );
}

beforeAll(async () => {
  fileText = await readFile(REALM_FILE, 'utf8');
  realm = JSON.parse(fileText) as KeycloakRealm;
  partners = await examplePartners();
});

const partnerClients = () => realm.clients.filter((c) => c.clientId !== OPERATOR_CLIENT_ID);

describe('Keycloak realm of the partners', () => {
  test('the committed file is exactly what `hub keycloak-realm -f examples/` prints', async () => {
    const { stdout } = await exec(
      process.execPath,
      ['--import', 'tsx', 'services/cli/main.ts', 'keycloak-realm', '-f', 'examples/'],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '' },
      },
    );
    expect(stdout).toBe(fileText);
    expect(realmFileText(keycloakRealm(partners, DEFAULTS))).toBe(fileText);
  }, 30_000);

  test("the file has the structure and the types Keycloak's import reads", () => {
    const parsed = realmSchema.safeParse(realm);
    expect(
      parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`),
    ).toEqual([]);
    expect(partners.length).toBeGreaterThan(0);
  });

  test('each active partner has a confidential client-credentials client with the RabbitMQ audience and nothing else', () => {
    expect(
      partnerClients()
        .map((c) => c.clientId)
        .sort(),
    ).toEqual(
      partners
        .filter((p) => p.spec.active)
        .map((p) => p.spec.oauthClientId ?? p.metadata.name)
        .sort(),
    );
    for (const c of partnerClients()) {
      expect(c).toEqual(
        expect.objectContaining({
          enabled: true,
          publicClient: false,
          bearerOnly: false,
          serviceAccountsEnabled: true,
          standardFlowEnabled: false,
          implicitFlowEnabled: false,
          directAccessGrantsEnabled: false,
          clientAuthenticatorType: 'client-secret',
          fullScopeAllowed: false,
          optionalClientScopes: [],
        }),
      );
      const audience = c.protocolMappers.filter((m) => m.protocolMapper === 'oidc-audience-mapper');
      expect(audience).toEqual([
        expect.objectContaining({
          config: expect.objectContaining({
            'included.custom.audience': 'rabbitmq',
            'access.token.claim': 'true',
            'id.token.claim': 'false',
          }),
        }),
      ]);
      expect(
        c.protocolMappers.find((m) => m.config['claim.name'] === 'client_id')?.config[
          'claim.value'
        ],
      ).toBe(c.clientId);
    }
  });

  test("a partner client's default scopes are exactly partnerScopes() of that partner, and each is a client scope of the realm", () => {
    const scopes = new Map(realm.clientScopes.map((s) => [s.name, s]));
    for (const p of partners.filter((x) => x.spec.active)) {
      const c = realm.clients.find(
        (x) => x.clientId === (p.spec.oauthClientId ?? p.metadata.name),
      )!;
      const expected = partnerScopes({
        partner: p.metadata.name,
        commandQueue: p.spec.commandQueue ?? `partner.${p.metadata.name}.commands`,
        vhost: '/',
        resourceServerId: 'rabbitmq',
      });
      expect(c.defaultClientScopes).toEqual(expected);
    }
    for (const c of realm.clients) {
      for (const name of [...c.defaultClientScopes, ...c.optionalClientScopes]) {
        expect({ client: c.clientId, name, exists: scopes.has(name) }).toEqual({
          client: c.clientId,
          name,
          exists: true,
        });
        expect(scopes.get(name)!.attributes).toEqual({
          'include.in.token.scope': 'true',
          'display.on.consent.screen': 'false',
        });
      }
    }
    // No client scope is left over, and none reaches a client by default.
    expect([...scopes.keys()].sort()).toEqual(
      [...new Set(realm.clients.flatMap((c) => c.defaultClientScopes))].sort(),
    );
    expect([realm.defaultDefaultClientScopes, realm.defaultOptionalClientScopes]).toEqual([[], []]);
  });

  test('secrets are environment placeholders only: no password, credential or literal secret anywhere', () => {
    const found: string[] = [];
    const walk = (v: unknown, at: string) => {
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${at}[${i}]`));
      else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          if (/(secret|password|credentials)$/i.test(k)) found.push(`${at}.${k}=${String(x)}`);
          walk(x, `${at}.${k}`);
        }
      }
    };
    walk(realm, 'realm');
    expect(
      found.filter((f) => !/^realm\.clients\[\d+\]\.secret=\$\{[A-Z0-9_]+\}$/.test(f)),
    ).toEqual([]);
    expect(found).toHaveLength(realm.clients.length);
    expect(realmSecretVariables(realm).sort()).toEqual(
      [
        'HUB_OPERATOR_CLIENT_SECRET',
        ...partnerClients().map((c) => partnerSecretVariable(c.clientId)),
      ].sort(),
    );
  });

  test('token issuance and refusals are recorded as events for 90 days; admin changes are audited without representations', () => {
    expect(realm).toEqual(
      expect.objectContaining({
        eventsEnabled: true,
        enabledEventTypes: ['CLIENT_LOGIN', 'CLIENT_LOGIN_ERROR'],
        eventsListeners: ['jboss-logging'],
        eventsExpiration: 90 * 24 * 3600,
        adminEventsEnabled: true,
        adminEventsDetailsEnabled: false,
        accessTokenLifespan: 300,
      }),
    );
  });

  test("the operator's client has a service account that may manage clients and client scopes, nothing more", () => {
    const op = realm.clients.find((c) => c.clientId === OPERATOR_CLIENT_ID)!;
    expect(op).toEqual(
      expect.objectContaining({
        serviceAccountsEnabled: true,
        publicClient: false,
        directAccessGrantsEnabled: false,
        standardFlowEnabled: false,
        defaultClientScopes: [],
      }),
    );
    expect(realm.users).toEqual([
      {
        username: 'service-account-hub-operator',
        enabled: true,
        serviceAccountClientId: OPERATOR_CLIENT_ID,
        clientRoles: { 'realm-management': ['manage-clients'] },
      },
    ]);
  });

  test('kubectl kustomize k8s/keycloak serves the file unchanged as a ConfigMap', async () => {
    const objects = parseYamlDocs<{
      kind: string;
      metadata: { name: string };
      data: Record<string, string>;
    }>(await mustRun(await kubectl(), ['kustomize', path.join(ROOT, 'k8s/keycloak')]));
    expect(objects.map((o) => o.kind)).toEqual(['ConfigMap']);
    expect(objects[0]!.metadata.name).toMatch(/^keycloak-realm-/);
    expect(objects[0]!.data['realm-integration-hub.json']).toBe(fileText);
  }, 60_000);
});

describe('keycloakRealm', () => {
  const partner = (
    name: string,
    spec: Partial<SmartHomePartnerResource['spec']> = {},
  ): SmartHomePartnerResource =>
    smartHomePartnerResource.parse({
      apiVersion: 'integration-hub.io/v1alpha1',
      kind: 'SmartHomePartner',
      metadata: { name },
      spec: { services: ['intercom'], ...spec },
    });

  test('an inactive partner gets no client and no scopes; defaults give the name as client id and partner.<name>.commands', () => {
    const r = keycloakRealm([partner('gate-one'), partner('old-one', { active: false })], {
      ...DEFAULTS,
      vhost: 'smart',
      resourceServerId: 'mq',
    });
    expect(r.clients.map((c) => c.clientId)).toEqual(['gate-one', OPERATOR_CLIENT_ID]);
    expect(r.clients[0]!.defaultClientScopes).toEqual([
      'mq.read:smart/partner.gate-one.commands',
      'mq.write:smart/smart-home.replies/gate-one',
    ]);
    expect(r.clients[0]!.secret).toBe('${HUB_PARTNER_SECRET_GATE_ONE}');
    expect(r.clientScopes.map((s) => s.name)).toEqual([
      'mq.read:smart/partner.gate-one.commands',
      'mq.write:smart/smart-home.replies/gate-one',
    ]);
  });

  test("two clients whose secrets would share a variable, or a partner taking the operator's client id, are refused", () => {
    expect(() =>
      keycloakRealm(
        [partner('a', { oauthClientId: 'x.y' }), partner('b', { oauthClientId: 'x-y' })],
        DEFAULTS,
      ),
    ).toThrow(/HUB_PARTNER_SECRET_X_Y/);
    expect(() =>
      keycloakRealm([partner('a', { oauthClientId: OPERATOR_CLIENT_ID })], DEFAULTS),
    ).toThrow(/already taken/);
  });
});
