// The ALLIO webhook key as the database knows it: only its SHA-256, so that the table (and every
// backup of it) holds nothing that opens the public webhook URL. The key itself comes inline from
// the resource (development) or from the Secret its webhookKeySecretRef names.
import { createHash } from 'node:crypto';
import { PermanentError } from '../../core/errors.js';
import { webhookKeyValue, type AllioIntegrationResource } from './resource.js';

/** Lower-case hex SHA-256 of the key's UTF-8 bytes; migration 000007 hashes old rows the same way. */
export function hashWebhookKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export interface SecretKeyRef {
  name: string;
  key: string;
}

/**
 * Reads one key of a Secret that the integration `owner` references. The operator asks the
 * Kubernetes API (and insists the Secret is bound to the integration); `hub apply` reads the file
 * Kubernetes mounts at SECRETS_DIR/<name>/<key>. Errors name the Secret, never its value.
 */
export type SecretReader = (
  ref: SecretKeyRef,
  owner: { name: string; namespace?: string },
) => Promise<string>;

/** The webhook key of a resource: inline, or read through `readSecret` and checked like an inline one. */
export async function resolveWebhookKey(
  r: AllioIntegrationResource,
  readSecret?: SecretReader,
): Promise<string> {
  if (r.spec.webhookKey !== undefined) return r.spec.webhookKey;
  const ref = r.spec.webhookKeySecretRef;
  if (!ref) {
    throw new PermanentError(
      `integration ${r.metadata.name}: set webhookKey or webhookKeySecretRef`,
    );
  }
  if (!readSecret) {
    throw new PermanentError(
      `integration ${r.metadata.name}: webhookKeySecretRef ${ref.name}/${ref.key} cannot be read here`,
    );
  }
  // Secrets written with `echo` or an editor end with a newline that is no part of the key.
  const key = (await readSecret(ref, r.metadata)).trim();
  const checked = webhookKeyValue.safeParse(key);
  if (!checked.success) {
    throw new PermanentError(
      `integration ${r.metadata.name}: the webhook key in Secret ${ref.name}/${ref.key} ${checked.error.issues[0]?.message ?? 'is invalid'}`,
    );
  }
  return checked.data;
}
