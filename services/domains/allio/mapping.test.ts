// Unit tests for mapping ALLIO records into CRM rows: phone normalisation, Moscow times, custom_fields.
import { describe, expect, test } from '@jest/globals';
import { makeDealCard, makeReservation } from '../../simulators/allio/data.js';
import {
  allioDealCardSchema,
  allioReservationSchema,
  mapContact,
  mapDealCard,
  mapReservation,
  normalizePhone,
  parseAllioTime,
  type AllioDealCard,
  type AllioReservation,
} from './mapping.js';

/** A reservation as ALLIO sends it (shape of the simulator's makeReservation), plus an unknown field. */
function reservation(overrides: Record<string, unknown> = {}): AllioReservation {
  return allioReservationSchema.parse({
    id: 4711,
    status: 'ACTIVE',
    type: 'PREPAID',
    till: '2025-10-30 20:08:10',
    space_id: 3120,
    manager: { id: 5, fullname: 'Иванов Сергей Петрович', city: 'Самара', is_agency: false },
    comment: 'Оплата по безналу',
    client: {
      id: 100123,
      first: 'Елена',
      middle: 'Ивановна',
      last: 'Смирнова',
      phone: '+7 (912) 345-67-89',
    },
    floor_plan: 'A-12',
    ...overrides,
  });
}

function dealCard(overrides: Record<string, unknown> = {}): AllioDealCard {
  return allioDealCardSchema.parse({
    ...reservation(),
    id: 9001,
    buyer: {
      id: 100456,
      first: 'Андрей',
      middle: 'Сергеевич',
      last: 'Попов',
      phone: '8 (922) 111-22-33',
    },
    sum: 2_450_000,
    contract_number: 'ДКП-2025/009001',
    ...overrides,
  });
}

describe('normalizePhone', () => {
  test.each([
    ['+7 (912) 345-67-89', '+79123456789'],
    ['89123456789', '+79123456789'],
    ['8 (912) 345-67-89', '+79123456789'],
    ['9123456789', '+79123456789'],
    ['79123456789', '+79123456789'],
    ['  +7 912 345 67 89  ', '+79123456789'],
  ])('%j becomes %j', (raw, expected) => {
    expect(normalizePhone(raw)).toBe(expected);
  });

  test.each([
    ['#ERROR!'],
    [''],
    ['-'],
    ['12345'],
    ['   '],
    ['call me'],
    ['+7 912 345 67 89 доб. 12'],
    ['1234567890123456'],
  ])('a non-phone such as %j maps to null', (raw) => {
    expect(normalizePhone(raw)).toBeNull();
  });

  test('null, undefined and non-string non-number values map to null', () => {
    expect(normalizePhone(null)).toBeNull();
    expect(normalizePhone(undefined)).toBeNull();
    expect(normalizePhone({ phone: '+79123456789' })).toBeNull();
  });

  test('a number input such as 89123456789 is normalised like its digits', () => {
    expect(normalizePhone(89123456789)).toBe('+79123456789');
    expect(normalizePhone(9123456789)).toBe('+79123456789');
  });
});

describe('parseAllioTime', () => {
  test('"2025-10-30 20:08:10" is Moscow time, i.e. 17:08:10Z', () => {
    expect(parseAllioTime('2025-10-30 20:08:10')?.toISOString()).toBe('2025-10-30T17:08:10.000Z');
  });

  test('a Moscow time just after midnight falls on the previous UTC day', () => {
    expect(parseAllioTime('2025-01-01 01:30:00')?.toISOString()).toBe('2024-12-31T22:30:00.000Z');
  });

  test('a date without a time is Moscow midnight, and a time without seconds has zero seconds', () => {
    expect(parseAllioTime('2025-10-30')?.toISOString()).toBe('2025-10-29T21:00:00.000Z');
    expect(parseAllioTime('2025-10-30T20:08')?.toISOString()).toBe('2025-10-30T17:08:00.000Z');
  });

  test.each([
    ['garbage'],
    ['30.10.2025 20:08:10'],
    ['2025-13-01 10:00:00'],
    ['2025-10-30 25:00:00'],
    [''],
  ])('garbage such as %j maps to null', (value) => {
    expect(parseAllioTime(value)).toBeNull();
  });

  test('an impossible calendar date such as 2025-02-30 maps to null instead of rolling into March', () => {
    // Regression: V8 accepts new Date('2025-02-30T10:00:00+03:00') as 2025-03-02.
    expect(parseAllioTime('2025-02-30 10:00:00')).toBeNull();
  });

  test('null and undefined map to null', () => {
    expect(parseAllioTime(null)).toBeNull();
    expect(parseAllioTime(undefined)).toBeNull();
  });
});

describe('mapReservation', () => {
  test('external_id is the id as a string and created_at is `till` read as Moscow time', () => {
    const { record } = mapReservation(reservation());
    expect(record.external_id).toBe('4711');
    expect(record.created_at?.toISOString()).toBe('2025-10-30T17:08:10.000Z');
  });

  test('a string id is kept as the external_id', () => {
    expect(mapReservation(reservation({ id: 'R-77' })).record.external_id).toBe('R-77');
  });

  test('the contact comes from `client`, with a normalised phone and the raw phone kept', () => {
    const { record, contact } = mapReservation(reservation());
    expect(contact).toEqual({
      external_id: '100123',
      phone: '+79123456789',
      phone_raw: '+7 (912) 345-67-89',
      custom_fields: { first: 'Елена', middle: 'Ивановна', last: 'Смирнова' },
    });
    expect(record.contact_external_id).toBe('100123');
  });

  test('custom_fields keep status, type, space_id, manager, comment, unknown extras and the raw `till`, but not id or client', () => {
    const { record } = mapReservation(reservation());
    expect(record.custom_fields).toEqual({
      status: 'ACTIVE',
      type: 'PREPAID',
      space_id: 3120,
      manager: { id: 5, fullname: 'Иванов Сергей Петрович', city: 'Самара', is_agency: false },
      comment: 'Оплата по безналу',
      floor_plan: 'A-12',
      till: '2025-10-30 20:08:10',
    });
    expect(record.custom_fields).not.toHaveProperty('id');
    expect(record.custom_fields).not.toHaveProperty('client');
  });

  test('a garbage phone such as #ERROR! maps to null and keeps the raw value', () => {
    const { contact } = mapReservation(
      reservation({
        client: {
          id: 100123,
          first: 'Елена',
          middle: 'Ивановна',
          last: 'Смирнова',
          phone: '#ERROR!',
        },
      }),
    );
    expect(contact?.phone).toBeNull();
    expect(contact?.phone_raw).toBe('#ERROR!');
  });

  test('a record without client has no contact and no contact link', () => {
    const r = reservation();
    delete r.client;
    const mapped = mapReservation(r);
    expect(mapped.contact).toBeNull();
    expect(mapped.record.contact_external_id).toBeNull();
    expect(mapped.record.custom_fields).not.toHaveProperty('client');
  });

  test('a record with client null has no contact and client is not copied into custom_fields', () => {
    const mapped = mapReservation(reservation({ client: null }));
    expect(mapped.contact).toBeNull();
    expect(mapped.record.custom_fields).not.toHaveProperty('client');
  });

  test('a missing or unparseable `till` gives created_at null and custom_fields.till keeps what was sent', () => {
    const missing = reservation();
    delete missing.till;
    expect(mapReservation(missing).record.created_at).toBeNull();
    expect(mapReservation(missing).record.custom_fields.till).toBeNull();
    const bad = mapReservation(reservation({ till: 'завтра' }));
    expect(bad.record.created_at).toBeNull();
    expect(bad.record.custom_fields.till).toBe('завтра');
  });

  test('a simulator reservation maps its id, Moscow `till` and client phone', () => {
    const source = makeReservation(1);
    const { record, contact } = mapReservation(allioReservationSchema.parse(source));
    expect(record.external_id).toBe('1');
    expect(record.created_at?.toISOString()).toBe(
      new Date(`${source.till.replace(' ', 'T')}+03:00`).toISOString(),
    );
    expect(contact?.external_id).toBe(String(source.client.id));
    expect(contact?.phone).toMatch(/^\+79\d{9}$/);
    expect(contact?.phone_raw).toBe(source.client.phone);
  });

  test('a simulator reservation whose phone is spreadsheet garbage (id 7: #ERROR!, id 11: empty) keeps the contact with phone null', () => {
    const seven = mapReservation(allioReservationSchema.parse(makeReservation(7))).contact;
    expect(seven).toMatchObject({ phone: null, phone_raw: '#ERROR!' });
    const eleven = mapReservation(allioReservationSchema.parse(makeReservation(11))).contact;
    expect(eleven).toMatchObject({ phone: null, phone_raw: '' });
  });
});

describe('mapDealCard', () => {
  test('the contact comes from `buyer`, not from `client`', () => {
    const { record, contact } = mapDealCard(dealCard());
    expect(contact).toMatchObject({
      external_id: '100456',
      phone: '+79221112233',
      phone_raw: '8 (922) 111-22-33',
    });
    expect(record.contact_external_id).toBe('100456');
    expect(record.external_id).toBe('9001');
  });

  test('`client` stays in custom_fields while `buyer` and `id` do not', () => {
    const { record } = mapDealCard(dealCard());
    expect(record.custom_fields.client).toEqual({
      id: 100123,
      first: 'Елена',
      middle: 'Ивановна',
      last: 'Смирнова',
      phone: '+7 (912) 345-67-89',
    });
    expect(record.custom_fields).not.toHaveProperty('buyer');
    expect(record.custom_fields).not.toHaveProperty('id');
    expect(record.custom_fields).toMatchObject({
      sum: 2_450_000,
      contract_number: 'ДКП-2025/009001',
      till: '2025-10-30 20:08:10',
    });
  });

  test('a deal card without buyer has no contact even when it has a client', () => {
    const d = dealCard();
    delete d.buyer;
    const mapped = mapDealCard(d);
    expect(mapped.contact).toBeNull();
    expect(mapped.record.contact_external_id).toBeNull();
    expect(mapped.record.custom_fields).toHaveProperty('client');
  });

  test('a simulator deal card links to its buyer and keeps its client in custom_fields', () => {
    const source = makeDealCard(2);
    const { record, contact } = mapDealCard(allioDealCardSchema.parse(source));
    expect(contact?.external_id).toBe(String(source.buyer.id));
    expect(record.custom_fields.client).toEqual(source.client);
    expect(record.custom_fields).not.toHaveProperty('buyer');
  });
});

describe('mapContact', () => {
  test('a numeric phone is kept as text in phone_raw and normalised in phone', () => {
    expect(mapContact({ id: 1, phone: 89123456789 })).toEqual({
      external_id: '1',
      phone: '+79123456789',
      phone_raw: '89123456789',
      custom_fields: {},
    });
  });

  test('a missing phone gives phone and phone_raw null', () => {
    expect(mapContact({ id: 2, first: 'Иван' })).toEqual({
      external_id: '2',
      phone: null,
      phone_raw: null,
      custom_fields: { first: 'Иван' },
    });
  });
});

describe('normalizePhone for national numbers', () => {
  test('a 10-digit Moscow landline without the country code becomes +7', () => {
    expect(normalizePhone('(495) 123-45-67')).toBe('+74951234567');
  });
});
