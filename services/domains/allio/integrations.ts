// Integration settings in PostgreSQL: lookup for webhook intake (by the hash of the URL key) and
// the worker, upsert from a resource, and resolving the API token (inline, or a mounted Secret).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Knex } from 'knex';
import { upsertByName } from '../../core/db.js';
import { PermanentError } from '../../core/errors.js';
import { boundSecretName, type AllioIntegrationResource } from './resource.js';
import { hashWebhookKey, resolveWebhookKey, type SecretReader } from './webhook-key.js';

export interface Integration {
  id: string;
  name: string;
  integration_uuid: string;
  /** SHA-256 of the webhook key (webhook-key.ts); the key itself is never stored. */
  webhook_key_hash: string;
  api_base_url: string;
  api_token: string | null;
  api_token_secret_name: string | null;
  api_token_secret_key: string | null;
  deletion_control: boolean;
  active: boolean;
  /** spec.weight: its share of the requests when others wait too (sync-worker.ts). */
  weight: number;
}

export const INTEGRATIONS = 'allio_integrations';

export async function findByWebhookKeyHash(
  db: Knex,
  keyHash: string,
): Promise<Integration | undefined> {
  return db<Integration>(INTEGRATIONS).where({ webhook_key_hash: keyHash }).first();
}

export async function findById(db: Knex, id: string): Promise<Integration | undefined> {
  return db<Integration>(INTEGRATIONS).where({ id }).first();
}

/**
 * Creates or updates the integration named by the resource; returns whether it was created. A key
 * from webhookKeySecretRef is read through `readSecret`; only its hash is written.
 */
export async function upsertIntegration(
  db: Knex,
  r: AllioIntegrationResource,
  readSecret?: SecretReader,
): Promise<{ id: string; created: boolean }> {
  const webhookKey = await resolveWebhookKey(r, readSecret);
  const row = {
    name: r.metadata.name,
    integration_uuid: r.spec.integrationUuid,
    webhook_key_hash: hashWebhookKey(webhookKey),
    api_base_url: r.spec.apiBaseUrl.replace(/\/+$/, ''),
    api_token: r.spec.apiToken ?? null,
    api_token_secret_name: r.spec.apiTokenSecretRef?.name ?? null,
    api_token_secret_key: r.spec.apiTokenSecretRef?.key ?? null,
    deletion_control: r.spec.deletionControl,
    active: r.spec.active,
    weight: r.spec.weight,
  };
  return upsertByName(db, INTEGRATIONS, row);
}

/** Reads Secrets as Kubernetes mounts them: `<secretsDir>/<secret>/<key>` (what `hub apply` uses). */
export function mountedSecretReader(secretsDir: string): SecretReader {
  return async (ref, owner) => {
    const file = path.join(secretsDir, ref.name, ref.key);
    try {
      return await readFile(file, 'utf8');
    } catch (cause) {
      throw new PermanentError(
        `integration ${owner.name}: Secret ${ref.name}/${ref.key} is not mounted at ${file}`,
        { cause },
      );
    }
  };
}

/**
 * The bearer token for ALLIO: inline, or read from `<secretsDir>/<secret>/<key>` (a mounted Secret).
 * Only the Secret bound to the integration (`allio-<name>`) is read, whatever the row says: a row
 * written before the rule, or by hand, cannot borrow another integration's token.
 */
export async function resolveToken(i: Integration, secretsDir: string): Promise<string> {
  if (i.api_token) return i.api_token;
  if (i.api_token_secret_name && i.api_token_secret_key) {
    if (i.api_token_secret_name !== boundSecretName(i.name)) {
      throw new PermanentError(
        `integration ${i.name}: Secret ${i.api_token_secret_name} is not bound to integration ${i.name}; its token must be in Secret ${boundSecretName(i.name)}`,
      );
    }
    const dir = path.resolve(secretsDir, i.api_token_secret_name);
    const file = path.resolve(dir, i.api_token_secret_key);
    if (path.dirname(file) !== dir) {
      throw new PermanentError(
        `integration ${i.name}: Secret key ${i.api_token_secret_key} is not a file name`,
      );
    }
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

/**
 * Marks the integration inactive when its resource is deleted: webhooks get 403 and its tasks
 * wait. The row stays, because tasks and CRM rows refer to it. Returns whether a row existed.
 */
export async function deactivateIntegration(db: Knex, name: string): Promise<boolean> {
  const updated = await db(INTEGRATIONS)
    .where({ name })
    .update({ active: false, updated_at: db.fn.now() });
  return updated > 0;
}
