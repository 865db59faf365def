// API keys for machine clients: `hk_<id>_<secret>`, sent as `X-API-Key`. Only the SHA-256 of the
// secret is stored; the id finds the row, the comparison is constant-time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import { ApiError } from '../http.js';

interface ApiKeyPrincipal {
  kind: 'api_key';
  keyId: string;
  name: string;
  roles: string[];
}

const FORMAT = /^hk_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})$/;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Creates a key and returns it once, in clear; only its hash is kept. */
export async function createApiKey(
  db: Knex,
  name: string,
  roles: readonly string[],
): Promise<{ id: string; key: string }> {
  const id = randomBytes(9)
    .toString('base64url')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '0')
    .slice(0, 12);
  const secret = randomBytes(32).toString('base64url');
  await db('api_keys').insert({ id, name, secret_sha256: sha256(secret), roles: [...roles] });
  return { id, key: `hk_${id}_${secret}` };
}

interface ApiKeyListing {
  id: string;
  name: string;
  roles: string[];
  active: boolean;
  createdAt: Date;
  lastUsedAt: Date | null;
}

/** Every key without its secret (which is not stored). */
export async function listApiKeys(db: Knex): Promise<ApiKeyListing[]> {
  return db('api_keys')
    .select(
      'id',
      'name',
      'roles',
      'active',
      'created_at as createdAt',
      'last_used_at as lastUsedAt',
    )
    .orderBy('created_at');
}

export async function revokeApiKey(db: Knex, id: string): Promise<boolean> {
  return (await db('api_keys').where({ id }).update({ active: false })) > 0;
}

/** Verifies a presented key; every failure is the same 401 so that key ids cannot be probed. */
export async function verifyApiKey(db: Knex, presented: string): Promise<ApiKeyPrincipal> {
  const refused = new ApiError(
    401,
    'invalid_api_key',
    'The API key is unknown, revoked or malformed; ask for a new key.',
  );
  const m = FORMAT.exec(presented);
  if (!m?.[1] || !m[2]) throw refused;
  const row = await db('api_keys')
    .where({ id: m[1], active: true })
    .first<{ id: string; name: string; secret_sha256: string; roles: string[] } | undefined>();
  if (!row) throw refused;
  const a = Buffer.from(sha256(m[2]), 'hex');
  const b = Buffer.from(row.secret_sha256, 'hex');
  if (a.length !== b.length || !timingSafeEqual(a, b)) throw refused;
  // Last use is informative only; it must not slow or fail the request.
  void db('api_keys')
    .where({ id: row.id })
    .update({ last_used_at: db.fn.now() })
    .catch(() => undefined);
  return { kind: 'api_key', keyId: row.id, name: row.name, roles: row.roles };
}
