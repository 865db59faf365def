// Validation of Kubernetes objects offline: built-in kinds, ServiceMonitor/PrometheusRule and
// cert-manager kinds against their published JSON schemas (kubernetes-models), custom resources
// against the openAPIV3Schema of our own CRDs.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './tools.js';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/** Module that holds the model of an apiVersion, by API group. */
function modelModule(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  if (group === 'monitoring.coreos.com') {
    return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  }
  if (group === 'cert-manager.io') return `@kubernetes-models/cert-manager/${apiVersion}/${kind}`;
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/v1/${kind}`;
}

/** Throws with the schema's complaint when `obj` is not a valid object of its kind. */
export async function validateKubeObject(obj: KubeObject): Promise<void> {
  const spec = modelModule(obj.apiVersion, obj.kind);
  // The module's export is the model class of `kind`; the import is typed loosely because the
  // module path is computed.
  const mod = (await import(spec)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = mod[obj.kind];
  if (!Model) throw new Error(`${spec} has no model ${obj.kind}`);
  try {
    new Model(obj).validate();
  } catch (thrown) {
    throw new Error(
      `${obj.kind}/${obj.metadata.name}: ${thrown instanceof Error ? thrown.message : String(thrown)}`,
      { cause: thrown },
    );
  }
}

export function parseYamlDocs<T = KubeObject>(text: string): T[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length) throw new Error(d.errors.map((e) => e.message).join('; '));
      return d.toJS() as T | null;
    })
    .filter((d): d is T => d !== null && d !== undefined);
}

export const CRD_FILES = [
  'crds/alliointegrations.integration-hub.io.yaml',
  'crds/smarthomepartners.integration-hub.io.yaml',
];

export async function loadCrds(): Promise<KubeObject[]> {
  return Promise.all(
    CRD_FILES.map(async (f) => parseYamlDocs(await readFile(path.join(ROOT, f), 'utf8'))[0]!),
  );
}

type Schema = Record<string, unknown>;

/**
 * kubectl validates field names strictly (an unknown field is an error), which a plain JSON schema
 * does not: every object schema with properties is closed here the same way. CEL rules
 * (x-kubernetes-validations) are not evaluated offline; the zod schema covers what they say.
 */
function strictFields(s: Schema): Schema {
  const out: Schema = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-')) continue;
    if (k === 'properties' && v && typeof v === 'object') {
      out[k] = Object.fromEntries(
        Object.entries(v as Record<string, Schema>).map(([p, ps]) => [p, strictFields(ps)]),
      );
    } else if ((k === 'items' || k === 'additionalProperties') && v && typeof v === 'object') {
      out[k] = strictFields(v as Schema);
    } else if ((k === 'oneOf' || k === 'anyOf' || k === 'allOf') && Array.isArray(v)) {
      out[k] = v.map((x: Schema) => strictFields(x));
    } else out[k] = v;
  }
  // The API server rejects duplicates in a list of type set.
  if (s['x-kubernetes-list-type'] === 'set') out.uniqueItems = true;
  if (
    out.properties &&
    out.additionalProperties === undefined &&
    !s['x-kubernetes-preserve-unknown-fields']
  ) {
    out.additionalProperties = false;
  }
  return out;
}

/** A validator per kind of our CRDs, from the storage version's openAPIV3Schema. */
export async function crdValidators(): Promise<Map<string, ValidateFunction>> {
  const ajv = new Ajv({
    strict: false,
    allErrors: true,
    formats: {
      int64: true,
      'date-time': /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/,
    },
  });
  const out = new Map<string, ValidateFunction>();
  for (const crd of await loadCrds()) {
    const spec = crd.spec as {
      group: string;
      names: { kind: string };
      versions: { name: string; storage: boolean; schema: { openAPIV3Schema: Schema } }[];
    };
    for (const v of spec.versions) {
      out.set(
        `${spec.group}/${v.name}/${spec.names.kind}`,
        ajv.compile(strictFields(v.schema.openAPIV3Schema)),
      );
    }
  }
  return out;
}
