// Writes mapped ALLIO records into the CRM tables inside the caller's transaction: contacts first
// (so records can link to them), then reservations or deals. Rows are written in external_id order
// so that concurrent writers lock in the same order and cannot deadlock.
import type { Knex } from 'knex';
import type { Entity } from './commands.js';
import type { CrmContactRow, MappedRecord } from './mapping.js';

const RECORD_TABLE: Record<Entity, string> = { reserve: 'crm_reservations', dealcard: 'crm_deals' };

const byExternalId = <T extends { external_id: string }>(a: T, b: T) =>
  a.external_id < b.external_id ? -1 : a.external_id > b.external_id ? 1 : 0;

interface WriteResult {
  records: number;
  contacts: number;
}

export async function writeRecords(
  trx: Knex.Transaction,
  integrationId: string,
  entity: Entity,
  mapped: readonly MappedRecord[],
): Promise<WriteResult> {
  // The last occurrence of a contact wins: it came from the most recently listed record.
  const contacts = new Map<string, CrmContactRow>();
  for (const m of mapped) if (m.contact) contacts.set(m.contact.external_id, m.contact);
  const contactRows = [...contacts.values()].sort(byExternalId);

  const contactIds = new Map<string, string>();
  if (contactRows.length > 0) {
    const rows: { id: string; external_id: string }[] = await trx('crm_contacts')
      .insert(
        contactRows.map((c) => ({
          integration_id: integrationId,
          external_id: c.external_id,
          phone: c.phone,
          phone_raw: c.phone_raw,
          custom_fields: JSON.stringify(c.custom_fields),
        })),
      )
      .onConflict(['integration_id', 'external_id'])
      .merge({
        phone: trx.raw('excluded.phone'),
        phone_raw: trx.raw('excluded.phone_raw'),
        custom_fields: trx.raw('excluded.custom_fields'),
        updated_at: trx.fn.now(),
      })
      .returning(['id', 'external_id']);
    for (const r of rows) contactIds.set(r.external_id, String(r.id));
  }

  const records = new Map<string, MappedRecord['record']>();
  for (const m of mapped) records.set(m.record.external_id, m.record);
  const recordRows = [...records.values()].sort(byExternalId);
  if (recordRows.length > 0) {
    await trx(RECORD_TABLE[entity])
      .insert(
        recordRows.map((r) => ({
          integration_id: integrationId,
          external_id: r.external_id,
          contact_id: r.contact_external_id
            ? (contactIds.get(r.contact_external_id) ?? null)
            : null,
          created_at: r.created_at,
          custom_fields: JSON.stringify(r.custom_fields),
        })),
      )
      .onConflict(['integration_id', 'external_id'])
      .merge({
        contact_id: trx.raw('excluded.contact_id'),
        created_at: trx.raw('excluded.created_at'),
        custom_fields: trx.raw('excluded.custom_fields'),
        synced_at: trx.fn.now(),
      });
  }
  return { records: recordRows.length, contacts: contactRows.length };
}

/** Soft-deletes records by external id; already deleted ones keep their first deletion time. */
export async function softDelete(
  trx: Knex.Transaction,
  integrationId: string,
  entity: Entity,
  externalIds: readonly string[],
): Promise<number> {
  if (externalIds.length === 0) return 0;
  return trx(RECORD_TABLE[entity])
    .where({ integration_id: integrationId })
    .whereIn('external_id', externalIds as string[])
    .whereNull('deleted_at')
    .update({ deleted_at: trx.fn.now() });
}
