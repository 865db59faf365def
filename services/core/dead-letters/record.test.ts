// Unit tests of what a dead letter says about its origin, its fingerprint, and the replay plan.
import { describe, expect, test } from '@jest/globals';
import type { MessageProperties } from 'amqplib';
import {
  describeDeadLetter,
  fromJsonSafe,
  keptBody,
  replayPlan,
  showableProperties,
  toJsonSafe,
} from './record.js';

const props = (headers: Record<string, unknown>, extra: Partial<MessageProperties> = {}) =>
  ({
    headers,
    messageId: 'm1',
    contentType: 'application/json',
    ...extra,
  }) as unknown as MessageProperties;
const fields = { exchange: 'smart-home.dlx', routingKey: 'acme' };
const death = (
  queue: string,
  reason: string,
  exchange: string,
  keys: string[],
  seconds = 1_800_000_000,
) => ({
  queue,
  reason,
  exchange,
  'routing-keys': keys,
  count: 1,
  time: { '!': 'timestamp', value: seconds },
});

describe('describeDeadLetter', () => {
  test('a broker dead-lettering names the first death: queue, exchange, routing key, reason and time', () => {
    const r = describeDeadLetter(
      'smart-home.dead-letter',
      fields,
      props({
        'x-death': [
          death('second.q', 'expired', 'other', ['x']),
          death('smart-home.replies', 'rejected', 'smart-home.replies', ['acme']),
        ],
        'x-first-death-queue': 'smart-home.replies',
        'x-first-death-exchange': 'smart-home.replies',
        'x-first-death-reason': 'rejected',
      }),
      Buffer.from('{}'),
    );
    expect(r).toMatchObject({
      queue: 'smart-home.dead-letter',
      sourceQueue: 'smart-home.replies',
      exchange: 'smart-home.replies',
      routingKey: 'acme',
      reason: 'rejected',
      deadAt: new Date(1_800_000_000_000),
    });
  });

  test("the hub's own dead-lettering names its reason and source, and wins over an older x-death", () => {
    const r = describeDeadLetter(
      'kitchen.order-status.dead',
      { exchange: 'kitchen.events.dlx', routingKey: 'order.status' },
      props({
        'x-hub-reason': 'bad bytes',
        'x-hub-source-queue': 'kitchen.order-status',
        'x-hub-source-exchange': 'kitchen.events',
        'x-death': [death('old', 'rejected', 'old', ['k'])],
      }),
      Buffer.from([1, 2]),
    );
    expect(r).toMatchObject({
      sourceQueue: 'kitchen.order-status',
      exchange: 'kitchen.events',
      routingKey: 'order.status',
      reason: 'bad bytes',
      deadAt: null,
    });
  });

  test('a message with neither header has no known origin and is not replayable', () => {
    const r = describeDeadLetter('q.dead', fields, props({}), Buffer.from('x'));
    expect(r).toMatchObject({
      sourceQueue: null,
      exchange: null,
      reason: expect.stringContaining('unknown'),
    });
    expect(
      replayPlan({
        id: '1',
        queue: r.queue,
        source_queue: null,
        exchange: null,
        routing_key: 'acme',
        reason: r.reason,
        properties: r.properties,
        body_bytes: 1,
        body_truncated: false,
      }),
    ).toEqual({ ok: false, code: 'origin_unknown', reason: expect.stringContaining('unknown') });
  });

  test('a redelivery (x-delivery-count) hashes the same; another death, body or queue does not', () => {
    const base = props({ 'x-hub-reason': 'r', 'x-hub-source-queue': 'q' });
    const fp = (p: MessageProperties, body = 'b', queue = 'q.dead') =>
      describeDeadLetter(queue, fields, p, Buffer.from(body)).fingerprint;
    expect(
      fp(props({ 'x-hub-reason': 'r', 'x-hub-source-queue': 'q', 'x-delivery-count': 3 })),
    ).toBe(fp(base));
    expect(fp(base, 'c')).not.toBe(fp(base));
    expect(fp(base, 'b', 'other.dead')).not.toBe(fp(base));
    expect(
      fp(props({ 'x-hub-reason': 'r', 'x-hub-source-queue': 'q', 'x-hub-replay-of': '7' })),
    ).not.toBe(fp(base));
  });

  test('byte-array headers survive the trip through JSON', () => {
    const v = {
      a: Buffer.from([0, 255]),
      b: [Buffer.from('x'), 1],
      c: { '!': 'timestamp', value: 5 },
    };
    expect(fromJsonSafe(JSON.parse(JSON.stringify(toJsonSafe(v))))).toEqual(v);
  });

  test('text holding NUL survives the trip through JSON that PostgreSQL stores, exact for a replay', () => {
    const v = { messageId: 'm-\u0000', headers: { a: 'x\u0000y', b: ['\u0000'], c: 'plain' } };
    const stored = JSON.stringify(toJsonSafe(v));
    expect(stored).not.toContain('\\u0000');
    expect(fromJsonSafe(JSON.parse(stored))).toEqual(v);
    expect(showableProperties(JSON.parse(stored))).toEqual(v);
  });
});

describe('replayPlan', () => {
  const row = {
    id: '42',
    queue: 'smart-home.dead-letter',
    source_queue: 'smart-home.replies',
    exchange: 'smart-home.replies',
    routing_key: 'acme',
    reason: 'rejected',
    properties: toJsonSafe({
      messageId: 'm1',
      contentType: 'application/json',
      deliveryMode: 1,
      expiration: '5000',
      userId: 'partner-acme',
      correlationId: null,
      headers: {
        'x-death': [death('smart-home.replies', 'rejected', 'smart-home.replies', ['acme'])],
        'x-first-death-reason': 'rejected',
        'x-delivery-count': 2,
        'x-partner-trace': Buffer.from('t'),
      },
    }) as Record<string, unknown>,
    body_bytes: 2,
    body_truncated: false,
  };

  test('goes to the original exchange and key, persistent, with its own headers and the replay origin only', () => {
    expect(replayPlan(row)).toEqual({
      ok: true,
      exchange: 'smart-home.replies',
      routingKey: 'acme',
      properties: {
        messageId: 'm1',
        contentType: 'application/json',
        persistent: true,
        headers: { 'x-partner-trace': Buffer.from('t'), 'x-hub-replay-of': '42' },
      },
    });
  });

  test('without an exchange it goes straight to the source queue through the default exchange', () => {
    expect(replayPlan({ ...row, exchange: null })).toMatchObject({
      ok: true,
      exchange: '',
      routingKey: 'smart-home.replies',
    });
  });

  test('an expired message is never replayed', () => {
    expect(replayPlan({ ...row, reason: 'expired' })).toEqual({
      ok: false,
      code: 'expired',
      reason: expect.stringContaining('expired'),
    });
  });

  test('a dead letter kept with only the beginning of its body is never replayed', () => {
    expect(replayPlan({ ...row, body_bytes: 5_000_000, body_truncated: true })).toEqual({
      ok: false,
      code: 'body_truncated',
      reason: expect.stringContaining('5000000 bytes'),
    });
  });
});

describe('keptBody', () => {
  test('a body up to the limit is kept whole; a larger one is cut to the limit and marked', () => {
    const body = Buffer.from('0123456789');
    expect(keptBody(body, 10)).toEqual({ body, bytes: 10, truncated: false });
    expect(keptBody(body, 4)).toEqual({ body: Buffer.from('0123'), bytes: 10, truncated: true });
  });
});
