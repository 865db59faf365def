// `hub apply`: validates each YAML document against its resource schema and upserts it.
import type { Knex } from 'knex';
import type { z } from 'zod';
import { upsertIntegration } from '../domains/allio/integrations.js';
import { problemLines } from '../core/bounds.js';
import { allioIntegrationResource } from '../domains/allio/resource.js';
import type { SecretReader } from '../domains/allio/webhook-key.js';
import {
  DEFAULT_SCOPE_SETTINGS,
  syncPartnerClient,
  type ScopeSettings,
} from '../domains/partner-access/clients.js';
import { upsertPartner } from '../domains/smart-home/partners.js';
import {
  defaultCommandQueue,
  smartHomePartnerResource,
  type SmartHomePartnerResource,
} from '../contracts/smart-home-partner.js';
import type { PartnerTopology } from '../contracts/smart-home-topology.js';
import type { SourcedDocument } from './resource-files.js';

interface Kind<S extends z.ZodTypeAny> {
  schema: S;
  /** The resource's name in `hub apply` output (kubectl style). */
  noun: string;
  upsert(db: Knex, resource: z.infer<S>, o: ApplyOptions): Promise<{ created: boolean }>;
}

const kind = <S extends z.ZodTypeAny>(k: Kind<S>): Kind<z.ZodTypeAny> => k as Kind<z.ZodTypeAny>;

/** Every kind `hub apply` understands, by `kind:`. */
export const KINDS: Record<string, Kind<z.ZodTypeAny>> = {
  AllioIntegration: kind({
    schema: allioIntegrationResource,
    noun: 'allioIntegration',
    upsert: (db, r, o) => upsertIntegration(db, r, o.readSecret),
  }),
  SmartHomePartner: kind({
    schema: smartHomePartnerResource,
    noun: 'smartHomePartner',
    // The partner and its client at the development authorization server, in one transaction.
    upsert: async (db, r, o) => {
      const out = await upsertPartner(db, r);
      await syncPartnerClient(db, r, o.partnerScopes);
      return out;
    },
  }),
};

interface ApplyOptions {
  /** The RabbitMQ vhost and resource server id in partners' scopes. */
  partnerScopes: ScopeSettings;
  /** Where a webhookKeySecretRef is read (the mounted Secret files under SECRETS_DIR). */
  readSecret?: SecretReader;
}

interface ValidResource {
  kind: Kind<z.ZodTypeAny>;
  resource: { kind: string; metadata: { name: string } };
}

/**
 * Validates every document against the schema of its `kind:`. Callers act on none of the set when
 * any problem is reported, so that one bad document changes nothing.
 */
export function validateResources(docs: readonly SourcedDocument[]): {
  valid: ValidResource[];
  problems: string[];
} {
  const problems: string[] = [];
  const several = new Set(docs.map((d) => d.source)).size > 1;
  const where = (d: SourcedDocument) =>
    several ? `${d.source} document ${d.index}` : `document ${d.index}`;
  const valid = docs.flatMap((d) => {
    const name = (d.doc as { kind?: unknown }).kind;
    const k = typeof name === 'string' && Object.hasOwn(KINDS, name) ? KINDS[name] : undefined;
    if (!k) {
      problems.push(
        `${where(d)}: kind ${JSON.stringify(name)} is not supported (expected ${Object.keys(KINDS).join(' or ')})`,
      );
      return [];
    }
    const parsed = k.schema.safeParse(d.doc);
    if (!parsed.success) {
      for (const line of problemLines(parsed.error.issues)) problems.push(`${where(d)}: ${line}`);
      return [];
    }
    return [{ kind: k, resource: parsed.data as ValidResource['resource'] }];
  });
  return { valid, problems };
}

export interface Applied {
  /** One kubectl-style line per resource. */
  lines: string[];
  /**
   * The queue and routing key of every SmartHomePartner applied: an active one's to declare on
   * RabbitMQ, an inactive one's to unbind (as the operator does), its queue kept for draining.
   */
  partnerQueues: { declare: PartnerTopology[]; unbind: PartnerTopology[] };
}

/** Applies every document; all are validated first so that a bad file changes nothing. */
export async function applyResources(
  db: Knex,
  docs: readonly SourcedDocument[],
  o: ApplyOptions = { partnerScopes: DEFAULT_SCOPE_SETTINGS },
): Promise<Applied> {
  const { valid, problems } = validateResources(docs);
  if (problems.length) throw new Error(`nothing applied:\n  ${problems.join('\n  ')}`);
  const lines = await db.transaction(async (trx) => {
    const out: string[] = [];
    for (const { kind: k, resource } of valid) {
      const { created } = await k.upsert(trx, resource, o);
      out.push(`${k.noun}/${resource.metadata.name} ${created ? 'created' : 'configured'}`);
    }
    return out;
  });
  const partnerQueues: Applied['partnerQueues'] = { declare: [], unbind: [] };
  for (const { resource } of valid) {
    if (resource.kind !== 'SmartHomePartner') continue;
    const r = resource as SmartHomePartnerResource;
    (r.spec.active ? partnerQueues.declare : partnerQueues.unbind).push({
      name: r.metadata.name,
      commandQueue: r.spec.commandQueue ?? defaultCommandQueue(r.metadata.name),
    });
  }
  return { lines, partnerQueues };
}
