// Unit tests for the AllioIntegration resource schema (YAML for `hub apply` and the Kubernetes CR).
import { describe, expect, test } from '@jest/globals';
import { allioIntegrationResource, API_VERSION } from './resource.js';

function resource(
  spec: Record<string, unknown> = {},
  top: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    apiVersion: 'integration-hub.io/v1alpha1',
    kind: 'AllioIntegration',
    metadata: { name: 'samara', namespace: 'integrations' },
    spec: {
      integrationUuid: '3f1c2b9a-7d4e-4c1a-9b2f-6a8e5d0c1b7e',
      webhookKey: 'k7Q2mX9pL4vN8rT1wZ5y',
      apiBaseUrl: 'https://allio.example.ru/api/v1',
      apiToken: 'allio-token-123',
      ...spec,
    },
    ...top,
  };
}

/** Parses and returns the issues as "path: message" lines (empty when valid). */
function issuesOf(input: unknown): string[] {
  const r = allioIntegrationResource.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('allioIntegrationResource', () => {
  test('a valid AllioIntegration parses with defaults deletionControl false and active true', () => {
    const parsed = allioIntegrationResource.parse(resource());
    expect(parsed.apiVersion).toBe(API_VERSION);
    expect(parsed.spec).toEqual({
      integrationUuid: '3f1c2b9a-7d4e-4c1a-9b2f-6a8e5d0c1b7e',
      webhookKey: 'k7Q2mX9pL4vN8rT1wZ5y',
      apiBaseUrl: 'https://allio.example.ru/api/v1',
      apiToken: 'allio-token-123',
      deletionControl: false,
      active: true,
      weight: 1,
    });
  });

  test('weight is a whole number from 1 to 100; anything else is refused with its path', () => {
    expect(allioIntegrationResource.parse(resource({ weight: 100 })).spec.weight).toBe(100);
    for (const weight of [0, 101, 1.5, -1, '3']) {
      expect(issuesOf(resource({ weight }))).toEqual([expect.stringMatching(/^spec\.weight: /)]);
    }
  });

  test('explicit deletionControl true and active false are kept', () => {
    const parsed = allioIntegrationResource.parse(
      resource({ deletionControl: true, active: false }),
    );
    expect([parsed.spec.deletionControl, parsed.spec.active]).toEqual([true, false]);
  });

  test('apiTokenSecretRef instead of apiToken is valid', () => {
    const parsed = allioIntegrationResource.parse(
      resource({
        apiToken: undefined,
        apiTokenSecretRef: { name: 'allio-samara', key: 'api-token' },
      }),
    );
    expect(parsed.spec.apiTokenSecretRef).toEqual({ name: 'allio-samara', key: 'api-token' });
    expect(parsed.spec.apiToken).toBeUndefined();
  });

  test('both apiToken and apiTokenSecretRef is an error', () => {
    expect(
      issuesOf(resource({ apiTokenSecretRef: { name: 'allio-samara', key: 'api-token' } })),
    ).toEqual(['spec.apiToken: set exactly one of apiToken or apiTokenSecretRef']);
  });

  test('neither apiToken nor apiTokenSecretRef is an error', () => {
    expect(issuesOf(resource({ apiToken: undefined }))).toEqual([
      'spec.apiToken: set exactly one of apiToken or apiTokenSecretRef',
    ]);
  });

  test('a webhookKey shorter than 16 characters is an error naming webhookKey', () => {
    const issues = issuesOf(resource({ webhookKey: 'short-key' }));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^spec\.webhookKey: must be at least 16 characters/);
  });

  test('a webhookKey with characters outside letters, digits, - and _ is an error naming webhookKey', () => {
    expect(issuesOf(resource({ webhookKey: 'abcdefghijklmnop/..' }))).toEqual([
      'spec.webhookKey: may contain only letters, digits, "-" and "_"',
    ]);
  });

  test('webhookKeySecretRef instead of an inline webhookKey is valid', () => {
    const parsed = allioIntegrationResource.parse(
      resource({
        webhookKey: undefined,
        webhookKeySecretRef: { name: 'allio-samara', key: 'webhook-key' },
      }),
    );
    expect(parsed.spec.webhookKeySecretRef).toEqual({ name: 'allio-samara', key: 'webhook-key' });
    expect(parsed.spec.webhookKey).toBeUndefined();
  });

  test('both webhookKey and webhookKeySecretRef, or neither, is an error naming webhookKey', () => {
    const message = 'spec.webhookKey: set exactly one of webhookKey or webhookKeySecretRef';
    expect(
      issuesOf(resource({ webhookKeySecretRef: { name: 'allio-samara', key: 'webhook-key' } })),
    ).toEqual([message]);
    expect(issuesOf(resource({ webhookKey: undefined }))).toEqual([message]);
  });

  test('a wrong apiVersion is rejected', () => {
    expect(issuesOf(resource({}, { apiVersion: 'integration-hub.io/v1' }))[0]).toMatch(
      /^apiVersion: /,
    );
  });

  test('a wrong kind is rejected', () => {
    expect(issuesOf(resource({}, { kind: 'KitchenIntegration' }))[0]).toMatch(/^kind: /);
  });

  test.each([['Allio-Samara'], ['allio_samara'], ['-allio'], ['allio-'], [''], ['a'.repeat(64)]])(
    'metadata.name %j is rejected',
    (name) => {
      const issues = issuesOf(resource({}, { metadata: { name } }));
      expect(issues.length).toBeGreaterThan(0);
      for (const i of issues) expect(i).toMatch(/^metadata\.name: /);
    },
  );

  test('a 63-character metadata.name is accepted', () => {
    expect(issuesOf(resource({}, { metadata: { name: 'a'.repeat(63) } }))).toEqual([]);
  });

  test('an integrationUuid that is not a UUID is rejected', () => {
    expect(issuesOf(resource({ integrationUuid: 'allio-1' }))).toEqual([
      'spec.integrationUuid: must be a UUID',
    ]);
  });

  test('an apiBaseUrl with a non-http scheme is rejected', () => {
    expect(issuesOf(resource({ apiBaseUrl: 'ftp://allio.example.ru' }))).toEqual([
      'spec.apiBaseUrl: must be an http(s) URL',
    ]);
  });

  test('an unknown spec field is rejected (spec is strict)', () => {
    expect(issuesOf(resource({ webhookSecret: 'x' }))[0]).toMatch(/^spec: Unrecognized key/);
  });

  test('a bad Secret name in apiTokenSecretRef is rejected', () => {
    expect(
      issuesOf(
        resource({
          apiToken: undefined,
          apiTokenSecretRef: { name: 'Allio Secret', key: 'token' },
        }),
      ),
    ).toEqual(['spec.apiTokenSecretRef.name: must be a Kubernetes Secret name']);
  });

  test("an apiTokenSecretRef naming another integration's Secret is rejected with the bound name to use", () => {
    expect(
      issuesOf(
        resource({
          apiToken: undefined,
          apiTokenSecretRef: { name: 'allio-kazan', key: 'api-token' },
        }),
      ),
    ).toEqual([
      'spec.apiTokenSecretRef.name: must be allio-samara: an integration may only read the Secret bound to it by name',
    ]);
  });

  test('a Secret key of "." or ".." (a directory, not a file) is rejected', () => {
    for (const key of ['.', '..', '..data']) {
      expect(
        issuesOf(
          resource({ apiToken: undefined, apiTokenSecretRef: { name: 'allio-samara', key } }),
        ),
      ).toEqual([
        'spec.apiTokenSecretRef.key: must be a Secret data key (letters, digits, "-", "_", "."; not starting with ".")',
      ]);
    }
  });

  test('Kubernetes fields outside the schema (status, metadata.uid) are kept', () => {
    const parsed = allioIntegrationResource.parse(
      resource({}, { status: { phase: 'Ready' }, metadata: { name: 'allio-samara', uid: 'abc' } }),
    );
    expect(parsed).toMatchObject({ status: { phase: 'Ready' }, metadata: { uid: 'abc' } });
  });
});
