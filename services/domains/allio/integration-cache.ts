// Integrations by webhook key, kept in memory for the webhook ingress: at thousands of webhooks a
// second the same few rows were read once per request. Any change to allio_integrations (insert,
// update, delete, truncate) notifies every process (migration 000014), and the owner calls
// invalidate(); entries also expire after `ttlMs`, which bounds staleness while the notification
// connection is down (the listener invalidates again when it reconnects).
import type { Knex } from 'knex';
import { findByWebhookKeyHash, type Integration } from './integrations.js';
import { hashWebhookKey } from './webhook-key.js';

export interface IntegrationLookup {
  findByWebhookKey(key: string): Promise<Integration | undefined>;
}

/** Reads the database every time (no listener to learn of changes). */
export const uncachedLookup = (db: Knex): IntegrationLookup => ({
  findByWebhookKey: (key) => findByWebhookKeyHash(db, hashWebhookKey(key)),
});

/** Far above any real number of integrations; bounds memory if keys were ever churned. */
export const INTEGRATION_CACHE_ENTRIES = 10_000;

interface IntegrationCacheOptions {
  ttlMs: number;
  /** Entries kept; the oldest is dropped past it. */
  maxEntries: number;
  now?: () => number;
}

export class IntegrationCache implements IntegrationLookup {
  /** By key hash (the key itself is not kept); only integrations that exist are cached. */
  private readonly entries = new Map<string, { integration: Integration; at: number }>();
  private readonly loading = new Map<string, Promise<Integration | undefined>>();
  /** Bumped by invalidate(): a read that started before a change must not store what it read. */
  private generation = 0;
  private readonly now: () => number;

  /** `load` reads one integration by key hash (`findByWebhookKeyHash` on the pool). */
  constructor(
    private readonly load: (keyHash: string) => Promise<Integration | undefined>,
    private readonly options: IntegrationCacheOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  static onDatabase(db: Knex, options: IntegrationCacheOptions): IntegrationCache {
    return new IntegrationCache((hash) => findByWebhookKeyHash(db, hash), options);
  }

  async findByWebhookKey(key: string): Promise<Integration | undefined> {
    const hash = hashWebhookKey(key);
    const hit = this.entries.get(hash);
    if (hit && this.now() - hit.at < this.options.ttlMs) return hit.integration;
    const pending = this.loading.get(hash);
    if (pending) return pending;
    const generation = this.generation;
    const load = this.load(hash)
      .then((integration) => {
        if (integration && generation === this.generation) this.store(hash, integration);
        return integration;
      })
      .finally(() => {
        if (this.loading.get(hash) === load) this.loading.delete(hash);
      });
    this.loading.set(hash, load);
    return load;
  }

  /** Forgets everything: the next request for each key reads the database. */
  invalidate(): void {
    this.generation++;
    this.entries.clear();
    this.loading.clear();
  }

  private store(hash: string, integration: Integration): void {
    this.entries.delete(hash);
    if (this.entries.size >= this.options.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(hash, { integration, at: this.now() });
  }
}
