// Pure kitchen logic without servers: the order state machine, the card-number guard, Standard
// Webhooks signatures, technology-card XML, the write-off arithmetic and the 1C objects of an hour.
import { describe, expect, test } from '@jest/globals';
import { sign, verify } from '../../contracts/standard-webhooks.js';
import { findCardNumber, luhnValid } from '../../contracts/card-number.js';
import { CATALOGS, DOC_TYPES, hourDocuments, refKeyOf } from './onec-documents.js';
import { BORSCHT, SALAD, cardXml } from '../../hub/demo-cards.js';
import { allowedFrom, keepsReason, ORDER_STATES } from './order-state.js';
import { classifyError } from '../../core/errors.js';
import { OutboundRefusedError } from '../../core/outbound.js';
import { mayHaveCharged } from './payment-reconciler.js';
import { unrefundedOutcome } from './refund-reconciler.js';
import { parseTechCard, techCardToXml, TechCardError } from './tech-card.js';
import { requirements, shortages, type StockLevel } from './write-off.js';

describe('order state machine', () => {
  test('an order is paid only from payment_pending and produced only from in_production', () => {
    expect(allowedFrom('paid')).toEqual(['payment_pending']);
    expect(allowedFrom('produced')).toEqual(['in_production']);
    expect(allowedFrom('produced')).not.toContain('awaiting_payment');
  });
  test('a transition is not applied twice nor skips ahead; a declined payment may be tried again', () => {
    expect(allowedFrom('paid')).not.toContain('paid');
    expect(allowedFrom('in_production')).not.toContain('awaiting_payment');
    expect(allowedFrom('payment_pending')).toContain('payment_declined');
  });
  test('produced and refunded are final; only a failed order is refunded, and it keeps why it failed', () => {
    const final = ORDER_STATES.filter((from) =>
      ORDER_STATES.every((to) => !allowedFrom(to).includes(from)),
    );
    expect(final.sort()).toEqual(['produced', 'refunded']);
    expect(allowedFrom('refunded')).toEqual(['failed']);
    expect(keepsReason('refunded')).toBe(true);
    expect(keepsReason('payment_pending')).toBe(false);
  });
  test('a refund refused with a 4xx is refused; one out of attempts or unreadable is failed', () => {
    expect(unrefundedOutcome({ reason: 'http_422' })).toBe('refused');
    expect(unrefundedOutcome({ reason: 'http_404' })).toBe('refused');
    expect(unrefundedOutcome({ reason: 'attempts_exhausted' })).toBe('failed');
    expect(unrefundedOutcome({ reason: 'permanent' })).toBe('failed');
  });
});

describe('card-number guard', () => {
  test('Luhn accepts test card numbers and refuses a changed digit', () => {
    expect(luhnValid('4111111111111111')).toBe(true);
    expect(luhnValid('4111111111111112')).toBe(false);
  });
  test('a card number is found anywhere in a body, grouped or not, as string or number', () => {
    expect(findCardNumber({ a: { b: ['x', 'my card 4111 1111 1111 1111 thanks'] } })).toBe(
      '$.a.b[1]',
    );
    expect(findCardNumber({ n: 5555555555554444 })).toBe('$.n');
    expect(findCardNumber({ comment: '4000-0000-0000-0002' })).toBe('$.comment');
  });
  test('phone numbers, uuids and non-Luhn digit runs pass', () => {
    expect(
      findCardNumber({
        phone: '+7 999 123-45-67',
        id: '0c6e7a53-1111-4111-8111-111111111111',
        n: '1234567890123',
      }),
    ).toBeUndefined();
  });
});

describe('Standard Webhooks signatures', () => {
  const secret = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`;
  const old = `whsec_${Buffer.from('fedcba9876543210fedcba9876543210').toString('base64')}`;
  const body = '{"type":"stock.level"}';
  const now = 1_700_000_000;
  test('a signature by any of the current secrets is accepted (key rotation)', () => {
    const sig = sign(old, 'msg_1', now, body);
    expect(
      verify(
        [secret, old],
        { id: 'msg_1', timestamp: String(now), signature: `v1,bogus ${sig}` },
        body,
        now,
      ),
    ).toMatchObject({ ok: true });
  });
  test('a changed body, an unknown secret or a stale timestamp is refused with its code', () => {
    const sig = sign(secret, 'msg_1', now, body);
    expect(
      verify([secret], { id: 'msg_1', timestamp: String(now), signature: sig }, `${body} `, now),
    ).toMatchObject({ code: 'invalid_signature' });
    expect(
      verify([old], { id: 'msg_1', timestamp: String(now), signature: sig }, body, now),
    ).toMatchObject({ code: 'invalid_signature' });
    expect(
      verify([secret], { id: 'msg_1', timestamp: String(now), signature: sig }, body, now + 301),
    ).toMatchObject({ code: 'timestamp_out_of_tolerance' });
    expect(
      verify([secret], { id: undefined, timestamp: String(now), signature: sig }, body, now),
    ).toMatchObject({ code: 'missing_headers' });
  });
});

describe('technology cards', () => {
  test('a valid card is read, and written back to XML that reads the same', async () => {
    const card = await parseTechCard(BORSCHT);
    expect(card).toMatchObject({
      dishId: 'borscht',
      version: 1,
      price: { minor: 45_000, currency: 'RUB' },
    });
    expect(card.ingredients).toEqual([
      { code: 'beet', unit: 'g', gross: 120, net: 115 },
      { code: 'beef', unit: 'g', gross: 80, net: 75 },
    ]);
    expect(await parseTechCard(techCardToXml(card))).toEqual(card);
  });
  test('a card breaking the schema is refused with the validator messages', async () => {
    const bad = cardXml({
      dishId: 'Bad Id',
      name: 'x',
      priceMinor: 1,
      ingredients: [['beet', -1]],
    });
    const err = await parseTechCard(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TechCardError);
    expect((err as TechCardError).problems.join('\n')).toMatch(/dishId|gross/);
  });
  test('a card with a DOCTYPE (entity expansion) is refused before parsing', async () => {
    await expect(
      parseTechCard(`<!DOCTYPE x [<!ENTITY a "aaaa">]>${BORSCHT.replace(/^<\?xml[^>]*>/, '')}`),
    ).rejects.toThrow(/DOCTYPE/);
  });
});

describe('write-off arithmetic', () => {
  test('gross amounts are summed per ingredient over portions', async () => {
    const cards = new Map([
      ['borscht', await parseTechCard(BORSCHT)],
      ['salad', await parseTechCard(SALAD)],
    ]);
    expect(
      requirements(
        [
          { dishId: 'borscht', quantity: 2 },
          { dishId: 'salad', quantity: 1 },
        ],
        cards,
      ),
    ).toEqual([
      { ingredient: 'beef', unit: 'g', quantity: 160 },
      { ingredient: 'beet', unit: 'g', quantity: 300.5 },
      { ingredient: 'walnut', unit: 'g', quantity: 15 },
    ]);
  });
  test('missing, short and expired ingredients are named with their reason', () => {
    const now = new Date('2030-01-01T12:00:00Z');
    const stock = new Map<string, StockLevel>([
      ['beet', { ingredient: 'beet', quantity: 100, unit: 'g', expiresAt: null }],
      [
        'beef',
        {
          ingredient: 'beef',
          quantity: 1000,
          unit: 'g',
          expiresAt: new Date('2030-01-01T11:00:00Z'),
        },
      ],
    ]);
    const need = [
      { ingredient: 'beef', unit: 'g', quantity: 10 },
      { ingredient: 'beet', unit: 'g', quantity: 120 },
      { ingredient: 'walnut', unit: 'g', quantity: 1 },
    ];
    expect(shortages(need, stock, now).map((s) => `${s.ingredient}:${s.reason}`)).toEqual([
      'beef:expired',
      'beet:out_of_stock',
      'walnut:out_of_stock',
    ]);
  });
});

describe('1C objects of an hour', () => {
  const at = new Date('2026-11-24T10:30:00Z');
  const items = [
    { dishId: 'salad', name: 'Beet salad', quantity: 2, priceMinor: 30_000 },
    { dishId: 'borscht', name: 'Borscht', quantity: 1, priceMinor: 45_000 },
  ];
  const docs = hourDocuments({
    orders: [
      { id: 'o1', producedAt: at, totalMinor: 105_000, currency: 'RUB', items },
      { id: 'o2', producedAt: at, totalMinor: 30_000, currency: 'RUB', items: items.slice(0, 1) },
    ],
    payments: [
      {
        id: '7',
        orderId: 'o1',
        settledAt: at,
        amountMinor: 105_000,
        currency: 'RUB',
        gatewayPaymentId: 'pay-1',
      },
    ],
    refunds: [
      {
        orderId: 'o3',
        refundedAt: at,
        amountMinor: 45_000,
        currency: 'RUB',
        gatewayPaymentId: 'pay-3',
        gatewayRefundId: 're-3',
      },
    ],
    writeOffs: [{ orderId: 'o1', at, lines: [{ ingredient: 'beet', quantity: 120, unit: 'g' }] }],
  });

  test('catalog entries come first, once each, and every document line points at one of them', () => {
    const catalog = docs.filter((d) => d.docType.startsWith('Catalog_'));
    expect(docs.slice(0, catalog.length)).toEqual(catalog);
    expect(catalog.map((d) => d.sourceId)).toEqual([
      'retail-buyer',
      'dish:salad',
      'dish:borscht',
      'ingredient:beet',
    ]);
    const keys = new Set(catalog.map((d) => d.refKey));
    const sale = docs.find((d) => d.docType === DOC_TYPES.sale && d.sourceId === 'o1');
    for (const line of sale?.body.Товары as { Номенклатура_Key: string }[]) {
      expect(keys.has(line.Номенклатура_Key)).toBe(true);
    }
    expect(sale?.body.Контрагент_Key).toBe(refKeyOf(CATALOGS.counterparty, 'retail-buyer'));
    const requisition = docs.find((d) => d.docType === DOC_TYPES.writeOff);
    expect(
      (requisition?.body.Материалы as { Номенклатура_Key: string }[])[0]?.Номенклатура_Key,
    ).toBe(refKeyOf(CATALOGS.item, 'ingredient:beet'));
  });

  test('a refund is a card operation of its own kind, with a key of its own', () => {
    const cardOps = docs.filter((d) => d.docType === DOC_TYPES.payment);
    expect(cardOps.map((d) => [d.sourceId, d.body.ВидОперации, d.body.СуммаДокумента])).toEqual([
      ['7', 'ОплатаПокупателя', 1050],
      ['refund:o3', 'ВозвратПокупателю', 450],
    ]);
    expect(new Set(docs.map((d) => d.refKey)).size).toBe(docs.length);
  });

  test('keys are stable name-based UUIDs, and a dish and an ingredient of one code differ', () => {
    expect(refKeyOf(CATALOGS.item, 'dish:salad')).toBe(refKeyOf(CATALOGS.item, 'dish:salad'));
    expect(refKeyOf(CATALOGS.item, 'dish:beet')).not.toBe(
      refKeyOf(CATALOGS.item, 'ingredient:beet'),
    );
    expect(refKeyOf(DOC_TYPES.sale, 'o1')).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });

  test('an hour without sales has no counterparty entry', () => {
    expect(hourDocuments({ orders: [], payments: [], refunds: [], writeOffs: [] })).toEqual([]);
  });
});

describe('a payment out of attempts', () => {
  test('may have charged after timeouts, lost connections and 5xx; not after the gateway refused it', () => {
    for (const reason of ['timeout', 'connection', 'http_5xx', 'unknown']) {
      expect([reason, mayHaveCharged(reason)]).toEqual([reason, true]);
    }
    for (const reason of ['http_400', 'http_401', 'http_422', 'http_429', 'permanent']) {
      expect([reason, mayHaveCharged(reason)]).toEqual([reason, false]);
    }
  });

  test('may have charged when the answer was a redirect or too large to read (the request was sent); not when the outbound policy refused to send it', () => {
    const reasonOf = (e: Error) => classifyError(e).reason;
    const sent = [
      new OutboundRefusedError('outbound_redirect', 'x'),
      new OutboundRefusedError('outbound_response_too_large', 'x'),
    ];
    const notSent = [
      new OutboundRefusedError('outbound_scheme', 'x'),
      new OutboundRefusedError('outbound_host', 'x'),
    ];
    for (const e of sent) expect([e.code, mayHaveCharged(reasonOf(e))]).toEqual([e.code, true]);
    for (const e of notSent) expect([e.code, mayHaveCharged(reasonOf(e))]).toEqual([e.code, false]);
  });
});
