// ALLIO records and their mapping into the CRM schema: mapped columns
// (external_id, created_at from `till`, phone), everything else kept in custom_fields.
import { z } from 'zod';

const contactSchema = z
  .object({
    id: z.union([z.number().int(), z.string().min(1)]),
    first: z.string().nullish(),
    middle: z.string().nullish(),
    last: z.string().nullish(),
    phone: z.union([z.string(), z.number()]).nullish(),
  })
  .passthrough();

/** A reservation as ALLIO returns it; unknown fields are kept. */
export const allioReservationSchema = z
  .object({
    id: z.union([z.number().int(), z.string().min(1)]),
    till: z.string().nullish(),
    client: contactSchema.nullish(),
  })
  .passthrough();

export const allioDealCardSchema = allioReservationSchema
  .extend({ buyer: contactSchema.nullish() })
  .passthrough();

type AllioContact = z.infer<typeof contactSchema>;
export type AllioReservation = z.infer<typeof allioReservationSchema>;
export type AllioDealCard = z.infer<typeof allioDealCardSchema>;

export interface CrmContactRow {
  external_id: string;
  phone: string | null;
  phone_raw: string | null;
  custom_fields: Record<string, unknown>;
}

export interface CrmRecordRow {
  external_id: string;
  created_at: Date | null;
  custom_fields: Record<string, unknown>;
  /** external_id of the linked contact, resolved to contact_id when written. */
  contact_external_id: string | null;
}

export interface MappedRecord {
  record: CrmRecordRow;
  contact: CrmContactRow | null;
}

/**
 * Normalises a phone to E.164, or null when it is not a phone (ALLIO sends '#ERROR!', '', '-').
 * Russian numbers written with a leading 8, or as 10 national digits, become +7.
 */
export function normalizePhone(raw: unknown): string | null {
  if (typeof raw !== 'string' && typeof raw !== 'number') return null;
  const text = String(raw).trim();
  if (!/^[+\d\s().-]+$/.test(text)) return null;
  let digits = text.replace(/\D/g, '');
  if (digits.length === 11 && digits.startsWith('8')) digits = `7${digits.slice(1)}`;
  // ALLIO is a Russian CRM: a 10-digit number is a national number without +7 (mobile or landline).
  else if (digits.length === 10) digits = `7${digits}`;
  if (digits.length < 10 || digits.length > 15) return null;
  return `+${digits}`;
}

/** ALLIO writes times as 'YYYY-MM-DD HH:MM:SS' in Moscow time. */
export function parseAllioTime(value: string | null | undefined): Date | null {
  if (!value) return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(value.trim());
  if (!m) return null;
  const [, y, mo, d, h = '00', mi = '00', s = '00'] = m;
  const date = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}+03:00`);
  if (Number.isNaN(date.getTime())) return null;
  // V8 rolls impossible dates over (2025-02-30 becomes 2025-03-02); read the day back to refuse them.
  const moscow = new Date(date.getTime() + 3 * 3_600_000);
  return moscow.getUTCDate() === Number(d) && moscow.getUTCMonth() + 1 === Number(mo) ? date : null;
}

export function mapContact(c: AllioContact): CrmContactRow {
  const { id, phone, ...rest } = c;
  const raw = phone === null || phone === undefined ? null : String(phone);
  return {
    external_id: String(id),
    phone: normalizePhone(raw),
    phone_raw: raw,
    custom_fields: rest,
  };
}

function mapRecord(r: AllioReservation, contactField: 'client' | 'buyer'): MappedRecord {
  const { id, till, ...rest } = r;
  const contactSource = r[contactField] as AllioContact | null | undefined;
  const contact = contactSource ? mapContact(contactSource) : null;
  const custom: Record<string, unknown> = { ...rest };
  delete custom[contactField];
  // `till` is both the mapped created_at and kept verbatim: the parsed time loses the raw text.
  custom.till = till ?? null;
  return {
    record: {
      external_id: String(id),
      created_at: parseAllioTime(till),
      custom_fields: custom,
      contact_external_id: contact?.external_id ?? null,
    },
    contact,
  };
}

/** A reservation links to its `client`. */
export function mapReservation(r: AllioReservation): MappedRecord {
  return mapRecord(r, 'client');
}

/** A deal card links to its `buyer` (seed: "Контакты ALLIO (из объекта buyer)"); `client` stays in custom_fields. */
export function mapDealCard(d: AllioDealCard): MappedRecord {
  return mapRecord(d, 'buyer');
}
