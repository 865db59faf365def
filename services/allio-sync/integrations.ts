// Integration settings in PostgreSQL: lookup for webhook intake and the worker, upsert from a
// resource, and resolving the API token (inline, or a mounted Kubernetes Secret).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Knex } from 'knex';
import { PermanentError } from '../core/errors.js';
import type { AllioIntegrationResource } from './resource.js';

export interface Integration {
  id: string;
  name: string;
  integration_uuid: string;
  webhook_key: string;
  api_base_url: string;
  api_token: string | null;
  api_token_secret_name: string | null;
  api_token_secret_key: string | null;
  deletion_control: boolean;
  active: boolean;
}

export const INTEGRATIONS = 'allio_integrations';

export async function findByWebhookKey(db: Knex, key: string): Promise<Integration | undefined> {
  return db<Integration>(INTEGRATIONS).where({ webhook_key: key }).first();
}

export async function findById(db: Knex, id: string): Promise<Integration | undefined> {
  return db<Integration>(INTEGRATIONS).where({ id }).first();
}

/** Creates or updates the integration named by the resource; returns whether it was created. */
export async function upsertIntegration(
  db: Knex,
  r: AllioIntegrationResource,
): Promise<{ id: string; created: boolean }> {
  const row = {
    name: r.metadata.name,
    integration_uuid: r.spec.integrationUuid,
    webhook_key: r.spec.webhookKey,
    api_base_url: r.spec.apiBaseUrl.replace(/\/+$/, ''),
    api_token: r.spec.apiToken ?? null,
    api_token_secret_name: r.spec.apiTokenSecretRef?.name ?? null,
    api_token_secret_key: r.spec.apiTokenSecretRef?.key ?? null,
    deletion_control: r.spec.deletionControl,
    active: r.spec.active,
  };
  const { rows } = await db.raw<{ rows: { id: string; created: boolean }[] }>(
    `? on conflict (name) do update set
       integration_uuid = excluded.integration_uuid, webhook_key = excluded.webhook_key,
       api_base_url = excluded.api_base_url, api_token = excluded.api_token,
       api_token_secret_name = excluded.api_token_secret_name, api_token_secret_key = excluded.api_token_secret_key,
       deletion_control = excluded.deletion_control, active = excluded.active, updated_at = now()
     returning id, (xmax = 0) as created`,
    [db(INTEGRATIONS).insert(row)],
  );
  const first = rows[0];
  if (!first) throw new Error(`upsert of integration ${r.metadata.name} returned nothing`);
  return { id: String(first.id), created: first.created };
}

/** The bearer token for ALLIO: inline, or read from `<secretsDir>/<secret>/<key>` (a mounted Secret). */
export async function resolveToken(i: Integration, secretsDir: string): Promise<string> {
  if (i.api_token) return i.api_token;
  if (i.api_token_secret_name && i.api_token_secret_key) {
    const file = path.join(secretsDir, i.api_token_secret_name, i.api_token_secret_key);
    try {
      return (await readFile(file, 'utf8')).trim();
    } catch (cause) {
      throw new PermanentError(
        `integration ${i.name}: Secret ${i.api_token_secret_name}/${i.api_token_secret_key} is not mounted at ${file}`,
        { cause },
      );
    }
  }
  throw new PermanentError(`integration ${i.name} has no API token configured`);
}
