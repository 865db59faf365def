// Partner clients of the development authorization server, in PostgreSQL. A client is created from
// its SmartHomePartner resource (by the operator or `hub apply`), carries the partner's RabbitMQ
// scopes, and is disabled, never deleted, when the partner goes: its audit history stays readable.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import {
  defaultCommandQueue,
  type SmartHomePartnerResource,
} from '../../contracts/smart-home-partner.js';
import { DEFAULT_RESOURCE_SERVER_ID, partnerScopes } from './scopes.js';

export const CLIENTS = 'auth_clients';

export interface AuthClient {
  client_id: string;
  partner: string;
  scopes: string[];
  secret_hash: string | null;
  active: boolean;
}

/**
 * A client secret is 32 random bytes, so it cannot be guessed from its hash by a dictionary; a
 * single SHA-256 is then as strong as a slow hash and keeps the token endpoint cheap. The stored
 * form names its algorithm so that it can change later.
 */
function hashSecret(secret: string): string {
  return `sha256:${createHash('sha256').update(secret, 'utf8').digest('base64url')}`;
}

export function secretMatches(stored: string | null | undefined, presented: unknown): boolean {
  if (!stored || typeof presented !== 'string' || !stored.startsWith('sha256:')) return false;
  const a = Buffer.from(stored);
  const b = Buffer.from(hashSecret(presented));
  return a.length === b.length && timingSafeEqual(a, b);
}

function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export interface ScopeSettings {
  vhost: string;
  resourceServerId: string;
}

export const DEFAULT_SCOPE_SETTINGS: ScopeSettings = {
  vhost: '/',
  resourceServerId: DEFAULT_RESOURCE_SERVER_ID,
};

export class AuthClientStore {
  constructor(
    private readonly db: Knex,
    private readonly scopes: ScopeSettings,
  ) {}

  /**
   * Creates the partner's client or brings its scopes up to date and enables it. A new client has no
   * secret yet: an operator issues one with `hub auth secret <client>` and hands it to the partner.
   */
  async ensure(o: {
    partner: string;
    clientId: string;
    queue: string;
  }): Promise<{ created: boolean }> {
    const scopes = partnerScopes({ partner: o.partner, commandQueue: o.queue, ...this.scopes });
    return this.db.transaction(async (trx) => {
      const inserted = await trx(CLIENTS)
        .insert({ client_id: o.clientId, partner: o.partner, scopes, active: true })
        .onConflict('client_id')
        .ignore()
        .returning('client_id');
      if (inserted.length > 0) return { created: true };
      const existing = await trx<AuthClient>(CLIENTS)
        .where({ client_id: o.clientId })
        .forUpdate()
        .first();
      if (!existing) throw new Error(`client "${o.clientId}" vanished while being updated`);
      if (existing.partner !== o.partner) {
        throw new Error(
          `client "${o.clientId}" belongs to partner "${existing.partner}", not "${o.partner}"`,
        );
      }
      const same =
        existing.active &&
        existing.scopes.length === scopes.length &&
        existing.scopes.every((s, i) => s === scopes[i]);
      if (!same) {
        await trx(CLIENTS)
          .where({ client_id: o.clientId })
          .update({ scopes, active: true, updated_at: trx.fn.now() });
      }
      return { created: false };
    });
  }

  /** Disables the client (no new tokens); tokens already issued run out within their lifetime. */
  async disable(clientId: string): Promise<boolean> {
    const n = await this.db(CLIENTS)
      .where({ client_id: clientId, active: true })
      .update({ active: false, updated_at: this.db.fn.now() });
    return n > 0;
  }

  /** Issues a secret (shown once, stored only as a hash); a previous one stops working at once. */
  async rotateSecret(clientId: string): Promise<string> {
    const secret = newSecret();
    const n = await this.db(CLIENTS)
      .where({ client_id: clientId })
      .update({
        secret_hash: hashSecret(secret),
        secret_rotated_at: this.db.fn.now(),
        updated_at: this.db.fn.now(),
      });
    if (n === 0) throw new Error(`no client "${clientId}"`);
    return secret;
  }

  find(clientId: string): Promise<AuthClient | undefined> {
    return this.db<AuthClient>(CLIENTS).where({ client_id: clientId }).first();
  }

  list(): Promise<AuthClient[]> {
    return this.db<AuthClient>(CLIENTS).orderBy('client_id');
  }
}

/** `hub apply`: an active partner's client is created or updated, an inactive one's disabled. */
export async function syncPartnerClient(
  db: Knex,
  r: SmartHomePartnerResource,
  settings: ScopeSettings,
): Promise<void> {
  const store = new AuthClientStore(db, settings);
  const clientId = r.spec.oauthClientId ?? r.metadata.name;
  if (r.spec.active) {
    await store.ensure({
      partner: r.metadata.name,
      clientId,
      queue: r.spec.commandQueue ?? defaultCommandQueue(r.metadata.name),
    });
  } else await store.disable(clientId);
}
