// Fuzz targets for the queue consumers: smart-home partner replies (JSON, mq-bridge) and kitchen
// order status events (Protobuf, api). Each case is published as a partner or the kitchen would,
// and followed until the consumer has handled it (its counter moved): a malformed message must be
// dead-lettered with a reason, nothing may be stored for it, and afterwards a valid message still
// gets through promptly.
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { WebSocket } from 'ws';
import {
  encodeStatus,
  STATUS_EXCHANGE,
  STATUS_ROUTING_KEY,
} from '../../services/domains/kitchen/status-events.js';
import { REPLIES_EXCHANGE } from '../../services/contracts/smart-home-topology.js';
import { waitFor } from '../support/context.js';
import type { Outcome, Target } from './engine.js';
import { hostileBody, hostileString, mutateJson } from './inputs.js';
import type { FuzzStack } from './stack.js';

/** Text put into message properties: if it ever shows up in /metrics, input became a label. */
export const LABEL_MARKER = 'fuzzlabel';

export interface MessageCase {
  body: Buffer;
  routingKey?: string;
  type?: string;
  messageId?: string;
  contentType?: string;
  headers?: Record<string, string>;
}

/** Sum of a counter's samples in a Prometheus text page, and the labels seen on it. */
async function counter(
  port: number,
  name: string,
): Promise<{ sum: number; text: string; results: Map<string, number> }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const results = new Map<string, number>();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    sum += v;
    const result = /result="([^"]*)"/.exec(line)?.[1] ?? '';
    results.set(result, (results.get(result) ?? 0) + v);
  }
  return { sum, text, results };
}

const props = fc.record(
  {
    type: fc.option(
      fc.oneof(
        fc.constantFrom('device.open.result', 'subscription.connect.result'),
        hostileString.map((s) => `${LABEL_MARKER}-${s.slice(0, 60)}`),
      ),
      { nil: undefined },
    ),
    messageId: fc.option(
      hostileString.map((s) => s.slice(0, 200)),
      { nil: undefined },
    ),
    contentType: fc.option(
      fc.constantFrom('application/json', 'text/plain', 'application/x-protobuf', ''),
      { nil: undefined },
    ),
    headers: fc.option(
      fc.dictionary(
        fc.constantFrom('x-a', 'x-death', 'x-hub-reason', 'x-delivery-count', 'content-type'),
        hostileString.map((s) => s.slice(0, 300)),
        { maxKeys: 3 },
      ),
      { nil: undefined },
    ),
  },
  { requiredKeys: [] },
);

/** Publishes a case and waits until the consumer counted it; answers 200 (acknowledged) or 400 (dead-lettered). */
async function publishAndFollow(
  s: FuzzStack,
  c: MessageCase,
  o: { exchange: string; routingKey: string; port: () => number; metric: string; rejected: string },
): Promise<Outcome> {
  const id = randomUUID();
  const before = await counter(o.port(), o.metric);
  s.amqp.ch.publish(o.exchange, c.routingKey ?? o.routingKey, c.body, {
    persistent: true,
    type: c.type,
    messageId: c.messageId,
    contentType: c.contentType,
    headers: { ...c.headers, 'x-fuzz-case': id },
  });
  let after = before;
  const handled = await waitFor(
    async () => {
      after = await counter(o.port(), o.metric);
      return after.sum > before.sum;
    },
    10_000,
    'the consumer to handle the message',
  ).then(
    () => true,
    () => false,
  );
  if (!handled) {
    return {
      status: 0,
      violations: ['the consumer did not handle the message within 10 s (blocked or lost)'],
    };
  }
  const rejected = (after.results.get(o.rejected) ?? 0) > (before.results.get(o.rejected) ?? 0);
  if (!rejected) return { status: 200 };
  const dead = await waitFor(() => s.deadLetters.get(id), 5_000, 'the dead-lettered copy').catch(
    () => undefined,
  );
  const violations: string[] = [];
  if (!dead) violations.push('rejected but not found in the dead-letter queue');
  else if (
    typeof dead.headers['x-hub-reason'] !== 'string' ||
    dead.headers['x-hub-reason'].length === 0 ||
    c.headers?.['x-hub-reason'] === dead.headers['x-hub-reason']
  ) {
    violations.push(
      `dead-lettered to ${dead.queue} without a reason of its own (headers: ${Object.keys(dead.headers).join(', ')})`,
    );
  }
  return { status: 400, violations };
}

function validReply(s: FuzzStack) {
  return {
    messageId: randomUUID(),
    correlationId: randomUUID(),
    type: 'device.open.result',
    service: 'intercom',
    tenantRef: randomUUID(),
    createdAt: new Date().toISOString(),
    payload: { outcome: 'failure', reason: 'door jammed' },
    _partner: s.partner,
  };
}

async function noLabelFromInput(port: number, service: string): Promise<string[]> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.includes(LABEL_MARKER));
  return line
    ? [
        `${service} turned message properties into metric labels (unbounded series): ${line.slice(0, 300)}`,
      ]
    : [];
}

export const repliesTarget: Target<MessageCase> = {
  name: 'smart-home replies (queue)',
  services: ['bridge'],
  arbitrary: (s) => {
    const { _partner, ...valid } = validReply(s);
    void _partner;
    return fc
      .record({
        body: fc.oneof(
          { weight: 1, arbitrary: fc.constant(Buffer.from(JSON.stringify(valid))) },
          {
            weight: 4,
            arbitrary: mutateJson(valid).map((v) => Buffer.from(JSON.stringify(v) ?? '')),
          },
          { weight: 3, arbitrary: hostileBody(valid) },
          {
            weight: 1,
            arbitrary: fc.integer({ min: 300_000, max: 1_000_000 }).map((n) =>
              Buffer.from(
                JSON.stringify({
                  ...valid,
                  payload: { outcome: 'failure', reason: 'r'.repeat(n) },
                }),
              ),
            ),
          },
        ),
        routingKey: fc.option(
          fc.oneof(
            fc.constantFrom('', 'other-partner', '#', '*.x'),
            hostileString.map((x) => x.slice(0, 200)),
          ),
          { nil: undefined, freq: 4 },
        ),
      })
      .chain((c) => props.map((p): MessageCase => ({ ...c, ...p })));
  },
  run: (s, c) =>
    publishAndFollow(s, c, {
      exchange: REPLIES_EXCHANGE,
      routingKey: s.partner,
      port: () => s.services.bridge.port,
      metric: 'hub_smart_home_replies_total',
      rejected: 'malformed',
    }),
  describe: (c) =>
    `routingKey=${JSON.stringify(c.routingKey?.slice(0, 80))} type=${JSON.stringify(c.type)} body=${c.body.length} bytes: ${c.body.subarray(0, 300).toString('utf8')}`,
  async after(s) {
    const broken = await noLabelFromInput(s.services.bridge.port, 'mq-bridge');
    // A valid reply still gets through promptly: a tenant of its own (earlier targets may have
    // disconnected the stack's tenant, rightly) connects, opens the door, and reads the result.
    const auth = {
      authorization: `Bearer ${await s.idp.issue(`${s.tenantId}-after-${randomUUID()}`, { ttlSeconds: 600 })}`,
    };
    s.partnerAnswers.on = true;
    try {
      const api = `http://127.0.0.1:${s.services.api.port}/v1/smart-home/subscriptions`;
      await fetch(`${api}/intercom/connect`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({
          personalData: { fullName: 'After Fuzz', phone: '+15550101', apartment: '2' },
          biometricsConsent: true,
        }),
      });
      await waitFor(
        async () => {
          const subs = (await (await fetch(api, { headers: auth })).json()) as {
            subscriptions?: Array<{ service: string; state: string }>;
          };
          return subs.subscriptions?.some(
            (x) => x.service === 'intercom' && x.state === 'connected',
          );
        },
        10_000,
        'a connect answered by the partner',
      ).catch(() =>
        broken.push('after the fuzz a valid connect reply was not applied within 10 s'),
      );
      const res = await fetch(
        `http://127.0.0.1:${s.services.api.port}/v1/smart-home/subscriptions/intercom/open`,
        { method: 'POST', headers: auth },
      );
      const { commandId } = (await res.json()) as { commandId?: string };
      if (res.status !== 202 || !commandId) {
        return [...broken, `after the fuzz an open command was refused (${res.status})`];
      }
      await waitFor(
        async () => {
          const r = await fetch(
            `http://127.0.0.1:${s.services.api.port}/v1/smart-home/commands/${commandId}`,
            { headers: auth },
          );
          return ((await r.json()) as { status?: string }).status === 'opened';
        },
        5_000,
        'the valid reply to be applied',
      ).catch(() => broken.push('after the fuzz a valid reply was not applied within 5 s'));
    } finally {
      s.partnerAnswers.on = false;
    }
    return broken;
  },
};

const statusType = protobuf
  .loadSync(fileURLToPath(new URL('../../proto/kitchen/v1/order_status.proto', import.meta.url)))
  .lookupType('integrationhub.kitchen.v1.OrderStatusChanged');

function validStatus(s: FuzzStack, version: number) {
  return {
    eventId: randomUUID(),
    orderId: s.orderId,
    tenantId: s.tenantId,
    state: 'paid' as const,
    reason: '',
    occurredAtMs: Date.now(),
    version,
    productionStatus: '',
  };
}

/** Protobuf messages with any field set to anything of its wire type, valid ones and byte-level damage. */
function statusBody(s: FuzzStack): fc.Arbitrary<Buffer> {
  const valid = encodeStatus(validStatus(s, 1));
  const anyField = fc.record(
    {
      eventId: fc.oneof(fc.uuid(), hostileString),
      orderId: fc.oneof(fc.constant(s.orderId), fc.uuid(), hostileString),
      tenantId: fc.oneof(fc.constant(s.tenantId), hostileString),
      state: fc.oneof(fc.constantFrom('paid', 'failed', 'refunded'), hostileString),
      reason: hostileString,
      occurredAtMs: fc.oneof(fc.integer(), fc.constant(0), fc.constant(Number.MAX_SAFE_INTEGER)),
      version: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
      productionStatus: hostileString,
    },
    { requiredKeys: [] },
  );
  return fc.oneof(
    {
      weight: 1,
      arbitrary: fc
        .nat({ max: 1_000_000 })
        .map((v) => encodeStatus({ ...validStatus(s, v), orderId: randomUUID() })),
    },
    {
      weight: 4,
      arbitrary: anyField.map((f) =>
        Buffer.from(statusType.encode(statusType.fromObject(f)).finish()),
      ),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.nat({ max: valid.length }), fc.uint8Array({ maxLength: 16 }))
        .map(([at, junk]) =>
          Buffer.concat([valid.subarray(0, at), Buffer.from(junk), valid.subarray(at)]),
        ),
    },
    { weight: 1, arbitrary: fc.nat({ max: valid.length - 1 }).map((n) => valid.subarray(0, n)) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)) },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 100_000, max: 1_000_000 })
        .map((n) =>
          Buffer.from(
            statusType
              .encode(statusType.fromObject({ ...validStatus(s, 1), reason: 'r'.repeat(n) }))
              .finish(),
          ),
        ),
    },
    // Length-delimited fields whose length runs past the end, and deeply repeated unknown fields.
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]),
        Buffer.from([0x0a, 0x80]),
        Buffer.alloc(50_000, 0x0b),
        Buffer.from(Array(20_000).fill([0x42, 0x00]).flat()),
      ),
    },
  );
}

export const statusTarget: Target<MessageCase> = {
  name: 'kitchen status events (queue)',
  services: ['api'],
  arbitrary: (s) =>
    fc.tuple(statusBody(s), props).map(([body, p]): MessageCase => ({ body, ...p })),
  run: (s, c) =>
    publishAndFollow(s, c, {
      exchange: STATUS_EXCHANGE,
      routingKey: STATUS_ROUTING_KEY,
      port: () => s.services.api.port,
      metric: 'hub_kitchen_status_events_total',
      rejected: 'dead_lettered',
    }),
  describe: (c) =>
    `type=${JSON.stringify(c.type)} body=${c.body.length} bytes: ${c.body.subarray(0, 120).toString('hex')}`,
  async after(s) {
    const broken = await noLabelFromInput(s.services.api.port, 'api');
    // A valid event still reaches the tenant's WebSocket promptly.
    const ws = new WebSocket(`ws://127.0.0.1:${s.services.api.port}/v1/events`, {
      headers: { authorization: `Bearer ${s.tokens.tenant}` },
    });
    ws.on('error', () => undefined);
    const messages: Array<{ type?: string; eventId?: string }> = [];
    ws.on('message', (m) =>
      messages.push(JSON.parse(String(m)) as { type?: string; eventId?: string }),
    );
    try {
      await waitFor(
        () => messages.some((m) => m.type === 'ready'),
        5_000,
        'the socket to be ready',
      );
      // A new order: fuzzed events may rightly have delivered any version for the stack's order.
      const event = { ...validStatus(s, 1), orderId: randomUUID() };
      s.amqp.ch.publish(STATUS_EXCHANGE, STATUS_ROUTING_KEY, encodeStatus(event), {
        persistent: true,
      });
      await waitFor(
        () => messages.some((m) => m.eventId === event.eventId),
        5_000,
        'the event on the socket',
      );
    } catch (thrown) {
      broken.push(
        `after the fuzz a valid status event did not reach the tenant's socket within 5 s: ${String(thrown)}`,
      );
    } finally {
      ws.terminate();
    }
    return broken;
  },
};
