// Deterministic ALLIO record generation for the simulator: the same id always yields the same
// reservation / deal card, so tests, benchmarks and demos are reproducible without fixtures.

export type AllioRecordStatus = 'ACTIVE' | 'EXPIRED' | 'CANCELLED';
export type AllioReservationType = 'PREPAID' | 'FREE' | 'PAID';

export interface AllioManager {
  id: number;
  fullname: string;
  city: string;
  is_agency: boolean;
}

/** A person as ALLIO embeds it (client of a reservation, client/buyer of a deal card). */
export interface AllioContact {
  id: number;
  first: string;
  middle: string;
  last: string;
  /** Free text in real ALLIO: may be "#ERROR!" or "" (see {@link phoneFor}). */
  phone: string;
}

export interface AllioReservation {
  id: number;
  status: AllioRecordStatus;
  type: AllioReservationType;
  /** "YYYY-MM-DD HH:MM:SS", local ALLIO time, always in 2025. */
  till: string;
  space_id: number;
  manager: AllioManager;
  comment: string;
  client: AllioContact;
}

export interface AllioDealCard extends AllioReservation {
  buyer: AllioContact;
  sum: number;
  contract_number: string;
}

/** ALLIO refuses list requests with more ids than this. */
export const ALLIO_MAX_IDS_PER_REQUEST = 100;
/** How many records a `{"date": ...}` list request returns. */
const ALLIO_DATE_BATCH_SIZE = 20;

/** Small, fast, well-distributed 32-bit PRNG; good enough for fake data and fully reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;

function pick<T>(rng: Rng, items: readonly [T, ...T[]]): T {
  return items[Math.floor(rng() * items.length)] ?? items[0];
}

function intBetween(rng: Rng, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1));
}

// Names come in [male, female] pairs so first name, patronymic and surname agree in gender,
// which keeps the data plausible for anyone reading demo screens.
const FIRST_NAMES: readonly [readonly [string, string], ...(readonly [string, string])[]] = [
  ['Александр', 'Елена'],
  ['Дмитрий', 'Ольга'],
  ['Сергей', 'Наталья'],
  ['Андрей', 'Анна'],
  ['Алексей', 'Мария'],
  ['Максим', 'Татьяна'],
  ['Иван', 'Ирина'],
  ['Михаил', 'Светлана'],
  ['Николай', 'Екатерина'],
  ['Павел', 'Юлия'],
];
const PATRONYMICS: readonly [readonly [string, string], ...(readonly [string, string])[]] = [
  ['Анатольевич', 'Анатольевна'],
  ['Иванович', 'Ивановна'],
  ['Сергеевич', 'Сергеевна'],
  ['Петрович', 'Петровна'],
  ['Александрович', 'Александровна'],
  ['Николаевич', 'Николаевна'],
  ['Владимирович', 'Владимировна'],
  ['Дмитриевич', 'Дмитриевна'],
];
const LAST_NAMES: readonly [readonly [string, string], ...(readonly [string, string])[]] = [
  ['Иванов', 'Иванова'],
  ['Смирнов', 'Смирнова'],
  ['Кузнецов', 'Кузнецова'],
  ['Попов', 'Попова'],
  ['Волков', 'Волкова'],
  ['Соколов', 'Соколова'],
  ['Дик', 'Дик'],
  ['Ким', 'Ким'],
  ['Лебедев', 'Лебедева'],
  ['Новиков', 'Новикова'],
  ['Морозов', 'Морозова'],
  ['Козлов', 'Козлова'],
];
const CITIES = [
  'Самара',
  'Москва',
  'Казань',
  'Санкт-Петербург',
  'Екатеринбург',
  'Новосибирск',
  'Нижний Новгород',
  'Уфа',
] as const;
const STATUSES = ['ACTIVE', 'EXPIRED', 'CANCELLED'] as const;
const TYPES = ['PREPAID', 'FREE', 'PAID'] as const;
const COMMENTS = [
  '',
  'Клиент просил перезвонить после 18:00',
  'Оплата по безналу',
  'Бронь продлена по звонку',
  'Нужно место рядом с лифтом',
  'Повторное обращение',
  'Скидка согласована с руководителем',
] as const;

interface PersonName {
  first: string;
  middle: string;
  last: string;
}

function personName(rng: Rng): PersonName {
  const g = rng() < 0.5 ? 0 : 1;
  return {
    first: pick(rng, FIRST_NAMES)[g],
    middle: pick(rng, PATRONYMICS)[g],
    last: pick(rng, LAST_NAMES)[g],
  };
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function validPhone(rng: Rng): string {
  return `+7 (9${pad(intBetween(rng, 0, 99), 2)}) ${pad(intBetween(rng, 0, 999), 3)}-${pad(
    intBetween(rng, 0, 99),
    2,
  )}-${pad(intBetween(rng, 0, 99), 2)}`;
}

/**
 * Real ALLIO exports spreadsheet garbage into phone fields; the simulator reproduces it per
 * record (not per contact) so one contact can arrive with a good phone in one record and a
 * broken one in another — the sync must not overwrite a good phone with junk.
 */
function phoneFor(recordId: number, validPhoneValue: string): string {
  if (recordId % 7 === 0) return '#ERROR!';
  if (recordId % 11 === 0) return '';
  return validPhoneValue;
}

/** Many records map onto one contact so consumers exercise contact upserts, not just inserts. */
function clientIdFor(recordId: number): number {
  return 100000 + (recordId % 997);
}

/** Buyers share the client id space, so the same person can be a client in one record and a buyer in another. */
function buyerIdFor(recordId: number): number {
  return 100000 + ((recordId * 31 + 17) % 997);
}

function makeContact(contactId: number, recordId: number): AllioContact {
  // Seeded by the contact id so the same contact always has the same name and base phone.
  const rng = mulberry32(contactId * 2654435761);
  const name = personName(rng);
  return { id: contactId, ...name, phone: phoneFor(recordId, validPhone(rng)) };
}

function makeManager(managerId: number): AllioManager {
  const rng = mulberry32(managerId ^ 0x3c6ef372);
  const name = personName(rng);
  return {
    id: managerId,
    fullname: `${name.last} ${name.first} ${name.middle}`,
    city: pick(rng, CITIES),
    is_agency: rng() < 0.25,
  };
}

const YEAR_2025_START_MS = Date.UTC(2025, 0, 1);
const DAY_MS = 86_400_000;

function till2025(rng: Rng): string {
  const ms =
    YEAR_2025_START_MS + intBetween(rng, 0, 364) * DAY_MS + intBetween(rng, 0, 86_399) * 1000;
  // Formatting a UTC instant keeps the output independent of the machine's time zone.
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

function baseRecord(id: number, rng: Rng): AllioReservation {
  return {
    id,
    status: pick(rng, STATUSES),
    type: pick(rng, TYPES),
    till: till2025(rng),
    space_id: intBetween(rng, 1000, 9999),
    manager: makeManager(1 + (id % 23)),
    comment: pick(rng, COMMENTS),
    client: makeContact(clientIdFor(id), id),
  };
}

export function makeReservation(id: number): AllioReservation {
  return baseRecord(id, mulberry32(id));
}

export function makeDealCard(id: number): AllioDealCard {
  // A different seed than reservations so a deal card is not a copy of the same-id reservation.
  const rng = mulberry32(id ^ 0x5bd1e995);
  const base = baseRecord(id, rng);
  return {
    ...base,
    buyer: makeContact(buyerIdFor(id), id),
    sum: intBetween(rng, 850, 4500) * 1000,
    contract_number: `ДКП-2025/${pad(id, 6)}`,
  };
}

/**
 * The ids a `{"date": "YYYY-MM-DD"}` list request returns: 20 consecutive ids per calendar day,
 * distinct across days (within a ~137-year cycle). Returns undefined for an invalid date.
 */
export function idsForDate(date: string): number[] | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const ms = Date.UTC(y, mo - 1, d);
  const check = new Date(ms);
  // Date.UTC silently rolls 2025-02-30 into March; reject anything that does not round-trip.
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) {
    return undefined;
  }
  const cycle = 50_000;
  const day = (((ms / DAY_MS) % cycle) + cycle) % cycle;
  const first = 1 + day * ALLIO_DATE_BATCH_SIZE;
  return Array.from({ length: ALLIO_DATE_BATCH_SIZE }, (_, i) => first + i);
}
