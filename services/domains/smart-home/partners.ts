// Smart-home partners in PostgreSQL: upsert from a SmartHomePartner resource, and lookups by
// service (which partner serves a new subscription).
import type { Knex } from 'knex';
import { upsertByName } from '../../core/db.js';
import type { Service } from './domain.js';
import {
  defaultCommandQueue,
  type SmartHomePartnerResource,
} from '../../contracts/smart-home-partner.js';

interface Partner {
  id: string;
  name: string;
  services: Service[];
  command_queue: string;
  oauth_client_id: string;
  active: boolean;
}

export const PARTNERS = 'smart_home_partners';

/** Creates or updates the partner named by the resource; returns whether it was created. */
export async function upsertPartner(
  db: Knex,
  r: SmartHomePartnerResource,
): Promise<{ id: string; created: boolean }> {
  const row = {
    name: r.metadata.name,
    services: r.spec.services,
    command_queue: r.spec.commandQueue ?? defaultCommandQueue(r.metadata.name),
    oauth_client_id: r.spec.oauthClientId ?? r.metadata.name,
    active: r.spec.active,
  };
  return upsertByName(db, PARTNERS, row);
}

/** The active partner that runs `service` (the first by name when several do). */
export async function partnerForService(db: Knex, service: Service): Promise<Partner | undefined> {
  return db<Partner>(PARTNERS)
    .where({ active: true })
    .whereRaw('? = any(services)', [service])
    .orderBy('name')
    .first();
}

export async function activePartners(db: Knex): Promise<Partner[]> {
  return db<Partner>(PARTNERS).where({ active: true }).orderBy('name');
}

/**
 * Marks the partner inactive when its resource is deleted: new subscriptions go to another
 * partner; existing ones keep theirs. The row stays, because requests refer to it. Returns whether
 * a row existed.
 */
export async function deactivatePartner(db: Knex, name: string): Promise<boolean> {
  const updated = await db(PARTNERS)
    .where({ name })
    .update({ active: false, updated_at: db.fn.now() });
  return updated > 0;
}
