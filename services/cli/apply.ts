// `hub apply`: validates each YAML document against its resource schema and upserts it.
import type { Knex } from 'knex';
import { upsertIntegration } from '../allio-sync/integrations.js';
import { allioIntegrationResource } from '../allio-sync/resource.js';

/** Applies every document; all are validated first so that a bad file changes nothing. */
export async function applyResources(db: Knex, docs: readonly unknown[]): Promise<string[]> {
  const problems: string[] = [];
  const valid = docs.flatMap((doc, i) => {
    if (doc === null || doc === undefined) return [];
    const kind = (doc as { kind?: unknown }).kind;
    if (kind !== 'AllioIntegration') {
      problems.push(`document ${i + 1}: kind ${JSON.stringify(kind)} is not supported (expected AllioIntegration)`);
      return [];
    }
    const parsed = allioIntegrationResource.safeParse(doc);
    if (!parsed.success) {
      for (const issue of parsed.error.issues)
        problems.push(`document ${i + 1}: ${issue.path.join('.') || '(root)'} ${issue.message}`);
      return [];
    }
    return [parsed.data];
  });
  if (problems.length) throw new Error(`nothing applied:\n  ${problems.join('\n  ')}`);
  return db.transaction(async (trx) => {
    const out: string[] = [];
    for (const r of valid) {
      const { created } = await upsertIntegration(trx, r);
      out.push(`allioIntegration/${r.metadata.name} ${created ? 'created' : 'configured'}`);
    }
    return out;
  });
}
