// Hostile input to the kitchen on the real API: bodies whose validation would list an issue per
// array element, unknown keys by the thousand, huge strings and deep nesting are answered with a
// small 4xx and store nothing; oversized or malformed status events are dead-lettered with a short
// reason and the next event still reaches the tenant.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import amqplib from 'amqplib';
import protobuf from 'protobufjs';
import {
  DEAD_QUEUE,
  encodeStatus,
  STATUS_EXCHANGE,
  STATUS_ROUTING_KEY,
} from '../services/domains/kitchen/status-events.js';
import { waitFor } from './support/context.js';
import {
  invalidArrayBody,
  listedIssues,
  MAX_ERROR_BYTES,
  MAX_LISTED_ISSUES,
  timedPost,
  type TimedAnswer,
} from './support/hostile.js';
import { seedMenuAndStock, startKitchenStack, type KitchenStack } from './support/kitchen.js';

let s: KitchenStack;
let token: string;

beforeAll(async () => {
  s = await startKitchenStack('kvalidation');
  await seedMenuAndStock(s);
  token = await s.idp.token('tenant-hostile');
});
afterAll(async () => {
  await s?.close();
});

const rows = async (table: string) =>
  Number((await s.ctx.db(table).count<{ c: string }[]>('* as c'))[0]?.c);

function expectSmallRefusal(res: TimedAnswer, status: number, code: string): void {
  expect({ status: res.status, code: res.json?.error?.code }).toEqual({ status, code });
  expect(res.bytes).toBeLessThan(MAX_ERROR_BYTES);
  expect(listedIssues(res)).toBeLessThanOrEqual(MAX_LISTED_ISSUES);
  expect(res.ms).toBeLessThan(2_000);
}

describe('kitchen routes refuse hostile bodies with a small answer', () => {
  const auth = () => ({ authorization: `Bearer ${token}` });

  test.each([
    ['256 KiB of order items that are empty objects', () => invalidArrayBody({}, 'items', {})],
    [
      '20 order items with 10 KiB dish ids each',
      () =>
        JSON.stringify({
          items: Array.from({ length: 20 }, () => ({ dishId: 'x'.repeat(10_240), quantity: 1 })),
        }),
    ],
    [
      'an order with 20,000 unknown keys',
      () =>
        JSON.stringify({
          items: [{ dishId: 'salad', quantity: 1 }],
          ...Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`key${i}`, 1])),
        }),
    ],
  ])('%s is answered 422 with at most 20 short issues and stores nothing', async (_name, body) => {
    const before = await rows('kitchen_orders');
    const res = await timedPost(`${s.apiUrl}/v1/kitchen/orders`, body(), auth());
    expectSmallRefusal(res, 422, 'invalid_body');
    expect(listedIssues(res)).toBeGreaterThan(0);
    expect(await rows('kitchen_orders')).toBe(before);
  });

  test('a payment whose card token is 200 KiB long is answered 422 in a small answer', async () => {
    const res = await timedPost(
      `${s.apiUrl}/v1/kitchen/orders/${randomUUID()}/payment`,
      JSON.stringify({ cardToken: `tok_${'a'.repeat(200 * 1024)}` }),
      auth(),
    );
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.bytes).toBeLessThan(MAX_ERROR_BYTES);
    expect(await rows('kitchen_payments')).toBe(0);
  });

  test('JSON nested deeper than 64 levels is answered 400 body_too_deep before any route runs', async () => {
    const before = await rows('kitchen_orders');
    const res = await timedPost(
      `${s.apiUrl}/v1/kitchen/orders`,
      `{"items":[],"x":${'['.repeat(50_000)}${']'.repeat(50_000)}}`,
      auth(),
    );
    expectSmallRefusal(res, 400, 'body_too_deep');
    expect(await rows('kitchen_orders')).toBe(before);
  });

  test('a card number nested 60 levels deep is still found', async () => {
    const nested = JSON.parse(
      `${'{"a":'.repeat(60)}"4111 1111 1111 1111"${'}'.repeat(60)}`,
    ) as unknown;
    const res = await timedPost(
      `${s.apiUrl}/v1/kitchen/orders`,
      JSON.stringify({ items: [{ dishId: 'salad', quantity: 1 }], note: nested }),
      auth(),
    );
    expectSmallRefusal(res, 422, 'card_number_rejected');
  });

  test('a technology card whose values are 5 KiB each is answered 422 with at most 10 short problems', async () => {
    const long = 'z'.repeat(5 * 1024);
    const xml =
      `<technologyCard xmlns="urn:integration-hub:kitchen:tech-card:1" dishId="${long}" version="${long}"><name>${long}</name>` +
      `<price currency="${long}">${long}</price><ingredients>${Array.from({ length: 5 }, () => `<ingredient code="${long}" unit="kg" gross="x" net="y"/>`).join('')}</ingredients></technologyCard>`;
    const res = await timedPost(
      `${s.apiUrl}/v1/kitchen/tech-cards/borscht`,
      xml,
      { 'x-api-key': s.adminKey, 'content-type': 'application/xml' },
      'PUT',
    );
    expect({ status: res.status, code: res.json?.error?.code }).toEqual({
      status: 422,
      code: 'invalid_tech_card',
    });
    expect(res.bytes).toBeLessThan(MAX_ERROR_BYTES);
    const problems = (res.json?.error?.details as { problems: string[] }).problems;
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.every((p) => p.length <= 200)).toBe(true);
  });

  test('a signed warehouse event of 256 KiB of junk is answered 422 with at most 20 issues and stores nothing', async () => {
    const before = await rows('kitchen_warehouse_events');
    const junk = Array.from({ length: 8_000 }, (_, i) => ({ [`k${i}`]: 'x'.repeat(5) }));
    const r = await s.warehouse.send('stock.level', {
      ingredient: 'x'.repeat(60 * 1024),
      quantity: 'lots',
      unit: 'crates',
      expiresAt: 7,
      junk,
    });
    expect(r.status).toBe(422);
    const answer = JSON.stringify(r.body);
    expect(answer.length).toBeLessThan(MAX_ERROR_BYTES);
    expect((r.body as { error: { details: unknown[] } }).error.details.length).toBeLessThanOrEqual(
      MAX_LISTED_ISSUES,
    );
    expect(await rows('kitchen_warehouse_events')).toBe(before);
  });

  test('a signed warehouse event nested 1,000 deep is answered 400 body_too_deep and stores nothing', async () => {
    const before = await rows('kitchen_warehouse_events');
    let deep: unknown = 1;
    for (let i = 0; i < 1_000; i++) deep = [deep];
    const r = await s.warehouse.send('stock.level', {
      ingredient: 'beet',
      quantity: 1,
      unit: 'g',
      deep,
    });
    expect(r).toMatchObject({ status: 400, body: { error: { code: 'body_too_deep' } } });
    expect(await rows('kitchen_warehouse_events')).toBe(before);
  });

  test('a signed warehouse event with a NUL in a string is answered 400 nul_character and stores nothing', async () => {
    const before = await rows('kitchen_warehouse_events');
    const r = await s.warehouse.send('stock.level', {
      ingredient: 'be\u0000et',
      quantity: 1,
      unit: 'g',
    });
    expect(r).toMatchObject({ status: 400, body: { error: { code: 'nul_character' } } });
    expect(await rows('kitchen_warehouse_events')).toBe(before);
  });
});

describe('order status consumer with hostile messages', () => {
  test('an oversized or malformed status event is dead-lettered with a short reason and the next event still reaches the tenant', async () => {
    await s.watchTenant('tenant-hostile-events');
    const conn = await amqplib.connect(s.vhost.url);
    try {
      const ch = await conn.createConfirmChannel();
      const event = {
        eventId: randomUUID(),
        orderId: randomUUID(),
        tenantId: 'tenant-hostile-events',
        state: 'paid' as const,
        reason: '',
        occurredAtMs: Date.now(),
        version: 1,
        productionStatus: '',
      };
      const deadBefore = (await ch.checkQueue(DEAD_QUEUE)).messageCount;
      ch.publish(
        STATUS_EXCHANGE,
        STATUS_ROUTING_KEY,
        encodeStatus({
          ...event,
          eventId: randomUUID(),
          orderId: randomUUID(),
          reason: 'r'.repeat(1024 * 1024),
        }),
      );
      ch.publish(
        STATUS_EXCHANGE,
        STATUS_ROUTING_KEY,
        encodeStatus({
          ...event,
          eventId: randomUUID(),
          orderId: randomUUID(),
          tenantId: 't'.repeat(100_000),
        }),
      );
      ch.publish(STATUS_EXCHANGE, STATUS_ROUTING_KEY, Buffer.alloc(512 * 1024, 0xff));
      // Well-formed Protobuf whose int64 time no Date can hold, and a version past 2^53: each used to
      // be requeued every second for ever, as if Redis were down.
      const raw = protobuf
        .loadSync('proto/kitchen/v1/order_status.proto')
        .lookupType('integrationhub.kitchen.v1.OrderStatusChanged');
      const unchecked = (e: Record<string, unknown>) =>
        Buffer.from(raw.encode(raw.fromObject(e)).finish());
      ch.publish(
        STATUS_EXCHANGE,
        STATUS_ROUTING_KEY,
        unchecked({
          ...event,
          eventId: randomUUID(),
          orderId: randomUUID(),
          occurredAtMs: 2 ** 60,
        }),
      );
      ch.publish(
        STATUS_EXCHANGE,
        STATUS_ROUTING_KEY,
        unchecked({ ...event, eventId: randomUUID(), orderId: randomUUID(), version: 2 ** 60 }),
      );
      ch.publish(STATUS_EXCHANGE, STATUS_ROUTING_KEY, encodeStatus(event));
      await ch.waitForConfirms();
      await waitFor(
        () => s.events.find((e) => e.event.eventId === event.eventId),
        10_000,
        'good event delivered',
      );
      await waitFor(
        async () => (await ch.checkQueue(DEAD_QUEUE)).messageCount === deadBefore + 5,
        10_000,
        'five dead-lettered',
      );
      const reasons: unknown[] = [];
      for (
        let m = await ch.get(DEAD_QUEUE, { noAck: true });
        m;
        m = await ch.get(DEAD_QUEUE, { noAck: true })
      ) {
        reasons.push(m.properties.headers?.['x-hub-reason']);
      }
      const mine = reasons.slice(-5);
      expect(mine.every((r) => typeof r === 'string' && r.length > 0 && r.length <= 500)).toBe(
        true,
      );
      expect(
        s.events.some(
          (e) => e.tenantId.length > 1_000 || String(e.event.reason ?? '').length > 1_000,
        ),
      ).toBe(false);
      await ch.close();
    } finally {
      await conn.close();
    }
  });
});
