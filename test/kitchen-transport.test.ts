// Transport guarantees of the kitchen: the payment client speaks only TLS 1.3 to a gateway whose
// certificate it can verify, and the API's status consumer dead-letters a malformed Protobuf
// message and goes on delivering good ones.
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import amqplib from 'amqplib';
import { PaymentClient } from '../services/domains/kitchen/payment-client.js';
import {
  DEAD_QUEUE,
  encodeStatus,
  STATUS_EXCHANGE,
  STATUS_ROUTING_KEY,
  decodeStatusOrReason,
} from '../services/domains/kitchen/status-events.js';
import { selfSignedCertificate, type Certificate } from '../services/simulators/tls.js';
import { waitFor } from './support/context.js';
import { startKitchenStack, type KitchenStack } from './support/kitchen.js';
import { testOutbound } from './support/partner-server.js';

let s: KitchenStack;
let other: Certificate;

beforeAll(async () => {
  s = await startKitchenStack('ktransport');
  other = await selfSignedCertificate('someone-else');
});
afterAll(async () => {
  await s?.close();
});

const request = {
  idempotencyKey: randomUUID(),
  orderId: randomUUID(),
  amountMinor: 100,
  currency: 'RUB',
  cardToken: 'tok_x',
};

async function tls12Server(): Promise<{ url: string; close(): Promise<void> }> {
  const server = https.createServer({ ...s.certificate, maxVersion: 'TLSv1.2' }, (_q, r) =>
    r.end('{}'),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describe('payment gateway TLS', () => {
  test('the payment client refuses a gateway that offers only TLS 1.2', async () => {
    const old = await tls12Server();
    const client = new PaymentClient({
      baseUrl: old.url,
      apiKey: 'merchant-test-key',
      ca: s.certificate.cert,
      timeoutMs: 2_000,
      outbound: testOutbound(),
    });
    try {
      await expect(client.process(request)).rejects.toThrow(/protocol|version/i);
    } finally {
      client.close();
      await old.close();
    }
  });

  test('the payment client refuses a gateway certificate it cannot verify', async () => {
    const client = new PaymentClient({
      baseUrl: s.gateway.url,
      apiKey: 'merchant-test-key',
      ca: other.cert,
      timeoutMs: 2_000,
      outbound: testOutbound(),
    });
    try {
      await expect(client.process(request)).rejects.toThrow(/certificate|self.signed/i);
      expect(s.gateway.charges).toHaveLength(0);
    } finally {
      client.close();
    }
  });
});

describe('order status events over RabbitMQ', () => {
  test('a malformed message goes to the dead-letter queue and the next good event still reaches the tenant', async () => {
    await s.watchTenant('tenant-events');
    const conn = await amqplib.connect(s.vhost.url);
    try {
      const ch = await conn.createConfirmChannel();
      ch.publish(
        STATUS_EXCHANGE,
        STATUS_ROUTING_KEY,
        Buffer.from('not protobuf at all \u0000\u00ff'),
      );
      // Version 0, as a publisher from before order versions sends it: duplicates go by event id.
      const good = {
        eventId: randomUUID(),
        orderId: randomUUID(),
        tenantId: 'tenant-events',
        state: 'paid' as const,
        reason: '',
        occurredAtMs: Date.now(),
        version: 0,
        productionStatus: '',
      };
      expect(decodeStatusOrReason(encodeStatus(good))).toEqual({ ok: true, event: good });
      ch.publish(STATUS_EXCHANGE, STATUS_ROUTING_KEY, encodeStatus(good));
      // A redelivered copy is acknowledged without telling the tenant twice.
      ch.publish(STATUS_EXCHANGE, STATUS_ROUTING_KEY, encodeStatus(good));
      // Handled after the copy, so once it arrives the copy has been decided.
      const sentinel = { ...good, eventId: randomUUID(), state: 'in_production' as const };
      ch.publish(STATUS_EXCHANGE, STATUS_ROUTING_KEY, encodeStatus(sentinel));
      await ch.waitForConfirms();
      const event = await waitFor(
        () => s.events.find((e) => e.event.eventId === good.eventId),
        10_000,
        'good event delivered',
      );
      expect(event.event).toMatchObject({
        type: 'order.status',
        orderId: good.orderId,
        state: 'paid',
        version: 0,
      });
      await waitFor(
        async () => (await ch.checkQueue(DEAD_QUEUE)).messageCount === 1,
        10_000,
        'dead-lettered message',
      );
      await waitFor(
        () => s.events.find((e) => e.event.eventId === sentinel.eventId),
        10_000,
        'sentinel delivered',
      );
      expect(s.events.filter((e) => e.event.eventId === good.eventId)).toHaveLength(1);
      await ch.close();
    } finally {
      await conn.close();
    }
  });
});
