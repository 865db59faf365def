// The CRDs: valid CustomResourceDefinitions, structural schemas that accept the examples `hub apply`
// reads and agree with the zod schemas on what is valid, printer columns on real fields, and a
// status schema that accepts what the operator writes.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, test } from '@jest/globals';
import type { ValidateFunction } from 'ajv';
import { KINDS as APPLY_KINDS } from '../../services/cli/apply.js';
import { nextStatus, plan, type Observed } from '../../services/operator/reconcile.js';
import {
  crdValidators,
  loadCrds,
  parseYamlDocs,
  validateKubeObject,
  type KubeObject,
} from '../support/kube-schemas.js';
import { ROOT } from '../support/tools.js';

let crds: KubeObject[];
let validators: Map<string, ValidateFunction>;

type CrdSpec = {
  group: string;
  names: { kind: string; plural: string };
  versions: {
    name: string;
    additionalPrinterColumns: { name: string; jsonPath: string }[];
    schema: { openAPIV3Schema: Schema };
  }[];
};
type Schema = { properties?: Record<string, Schema>; items?: Schema };

beforeAll(async () => {
  crds = await loadCrds();
  validators = await crdValidators();
});

const validate = (doc: { apiVersion: string; kind: string }) => {
  const v = validators.get(`${doc.apiVersion}/${doc.kind}`);
  if (!v) throw new Error(`no CRD for ${doc.apiVersion} ${doc.kind}`);
  const ok = v(doc);
  return { ok, errors: ok ? [] : (v.errors ?? []).map((e) => `${e.instancePath} ${e.message}`) };
};

async function examples(): Promise<{ file: string; doc: KubeObject }[]> {
  const dir = path.join(ROOT, 'crds/examples');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort();
  const out: { file: string; doc: KubeObject }[] = [];
  for (const file of files) {
    for (const doc of parseYamlDocs(await readFile(path.join(dir, file), 'utf8'))) {
      out.push({ file, doc });
    }
  }
  return out;
}

describe('custom resource definitions', () => {
  test('each CRD is a valid apiextensions.k8s.io/v1 object, and every kind hub apply reads has one', async () => {
    for (const crd of crds) await validateKubeObject(crd);
    expect(crds.map((c) => (c.spec as CrdSpec).names.kind).sort()).toEqual(
      Object.keys(APPLY_KINDS).sort(),
    );
  });

  test('every example beside the CRDs passes both the zod schema of hub apply and the CRD schema', async () => {
    const all = await examples();
    expect(all.map((e) => e.doc.kind).sort()).toEqual(Object.keys(APPLY_KINDS).sort());
    for (const { file, doc } of all) {
      const zod = APPLY_KINDS[doc.kind]!.schema.safeParse(doc);
      expect({ file, zod: zod.success, crd: validate(doc) }).toEqual({
        file,
        zod: true,
        crd: { ok: true, errors: [] },
      });
    }
  });

  test('the CRD schema and the zod schema agree on what is valid', async () => {
    const docs = await Promise.all(
      ['allio-integration.yaml', 'smart-home-partner.yaml'].map(
        async (f) => parseYamlDocs(await readFile(path.join(ROOT, 'crds/examples', f), 'utf8'))[0]!,
      ),
    );
    const integration = docs[0]!;
    const partner = docs[1]!;
    const withSpec = (
      base: KubeObject,
      spec: Record<string, unknown>,
      drop: string[] = [],
    ): KubeObject => {
      const s = { ...(base.spec as Record<string, unknown>), ...spec };
      for (const k of drop) delete s[k];
      return { ...base, spec: s };
    };
    const cases: [string, KubeObject, boolean][] = [
      [
        'inline token instead of a Secret',
        withSpec(integration, { apiToken: 't' }, ['apiTokenSecretRef']),
        true,
      ],
      ['both token forms', withSpec(integration, { apiToken: 't' }), false],
      ['no token at all', withSpec(integration, {}, ['apiTokenSecretRef']), false],
      [
        'inline webhook key instead of a Secret',
        withSpec(integration, { webhookKey: 'abcdefgh-ijklmnopq' }, ['webhookKeySecretRef']),
        true,
      ],
      [
        'both webhook key forms',
        withSpec(integration, { webhookKey: 'abcdefgh-ijklmnopq' }),
        false,
      ],
      ['no webhook key at all', withSpec(integration, {}, ['webhookKeySecretRef']), false],
      [
        'webhook key Secret reference without a key',
        withSpec(integration, { webhookKeySecretRef: { name: 'allio' } }),
        false,
      ],
      [
        'webhook key under 16 characters',
        withSpec(integration, { webhookKey: 'short-key' }, ['webhookKeySecretRef']),
        false,
      ],
      [
        'webhook key with a slash',
        withSpec(integration, { webhookKey: 'abcdefgh/ijklmnopq' }, ['webhookKeySecretRef']),
        false,
      ],
      [
        'integration uuid that is not a UUID',
        withSpec(integration, { integrationUuid: 'residence-north' }),
        false,
      ],
      [
        'API base URL that is not http(s)',
        withSpec(integration, { apiBaseUrl: 'ftp://allio.example' }),
        false,
      ],
      [
        'Secret reference without a key',
        withSpec(integration, { apiTokenSecretRef: { name: 'allio' } }),
        false,
      ],
      ['unknown spec field', withSpec(integration, { retries: 3 }), false],
      ['deletion control as a string', withSpec(integration, { deletionControl: 'yes' }), false],
      ['weight 3', withSpec(integration, { weight: 3 }), true],
      ['weight 0', withSpec(integration, { weight: 0 }), false],
      ['weight over 100', withSpec(integration, { weight: 101 }), false],
      ['weight that is not whole', withSpec(integration, { weight: 1.5 }), false],
      [
        'partner with only defaults',
        withSpec(partner, {}, ['commandQueue', 'oauthClientId', 'active']),
        true,
      ],
      ['partner with no service', withSpec(partner, { services: [] }), false],
      ['partner with an unknown service', withSpec(partner, { services: ['elevator'] }), false],
      [
        'partner naming a service twice',
        withSpec(partner, { services: ['intercom', 'intercom'] }),
        false,
      ],
      ['queue name with a space', withSpec(partner, { commandQueue: 'partner queue' }), false],
      ['OAuth client id with a slash', withSpec(partner, { oauthClientId: 'a/b' }), false],
      // "amq." is refused by the CRD's CEL rule, which only the API server evaluates.
    ];
    const results = cases.map(([name, doc, valid]) => ({
      name,
      zod: APPLY_KINDS[doc.kind]!.schema.safeParse(doc).success,
      crd: validate(doc).ok,
      valid,
    }));
    expect(results).toEqual(
      cases.map(([name, , valid]) => ({ name, zod: valid, crd: valid, valid })),
    );
  });

  test('the status the operator writes, success or failure, is valid under the CRD status schema', () => {
    const base = {
      apiVersion: 'integration-hub.io/v1alpha1',
      metadata: {
        name: 'domofon-plus',
        namespace: 'hub',
        generation: 2,
        finalizers: ['integration-hub.io/operator'],
      },
    };
    const partner: Observed = {
      ...base,
      kind: 'SmartHomePartner',
      spec: { services: ['intercom'] },
    };
    const p = plan(partner);
    const actions = p.kind === 'apply' ? p.actions : [];
    const ok = nextStatus(
      partner,
      p,
      actions.map((action) => ({ action, result: 'done' as const })),
      new Date(),
    );
    const failed = nextStatus(
      partner,
      p,
      [{ action: actions[0]!, result: 'failed', error: 'channel closed' }],
      new Date(),
    );
    const invalid: Observed = { ...base, kind: 'AllioIntegration', spec: { webhookKey: 'x' } };
    const invalidStatus = nextStatus(invalid, plan(invalid), [], new Date());
    expect(failed.conditions?.[0]?.status).toBe('False');
    for (const status of [ok, failed]) {
      expect(validate({ ...partner, status } as KubeObject)).toEqual({ ok: true, errors: [] });
    }
    // The invalid resource's spec fails, as it should; its status has no fault of its own.
    const invalidResult = validate({ ...invalid, status: invalidStatus } as KubeObject);
    expect(invalidResult.errors.length).toBeGreaterThan(0);
    expect(invalidResult.errors.filter((e) => !e.startsWith('/spec'))).toEqual([]);
  });

  test('printer columns point at fields the schema defines', () => {
    for (const crd of crds) {
      const spec = crd.spec as CrdSpec;
      for (const v of spec.versions) {
        for (const col of v.additionalPrinterColumns) {
          if (col.jsonPath.startsWith('.metadata.')) continue;
          const [field, ...rest] = col.jsonPath.replace(/\[.*$/, '').slice(1).split('.');
          let s: Schema | undefined = v.schema.openAPIV3Schema.properties?.[field!];
          for (const part of rest) s = s?.properties?.[part] ?? s?.items?.properties?.[part];
          expect({ kind: spec.names.kind, column: col.name, defined: s !== undefined }).toEqual({
            kind: spec.names.kind,
            column: col.name,
            defined: true,
          });
        }
      }
    }
  });
});
