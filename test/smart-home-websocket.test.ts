// The tenant WebSocket on the real servers: heartbeats close dead sockets, a tenant's socket count
// is bounded, and access tokens in URLs never reach the logs.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { buildOrderStatus, type TenantEvent } from '../services/contracts/tenant-events.js';
import { createLogger, redactUrl } from '../services/core/logger.js';
import { WebSocket } from 'ws';
import { TenantEventPublisher } from '../services/core/tenant-events.js';

import { waitFor } from './support/context.js';
import {
  openSocket,
  startStack,
  type ApiInstance,
  type Stack,
  type TenantSocket,
} from './support/smart-home.js';
import type { TenantIdp } from '../services/simulators/tenant-idp/server.js';

let idp: TenantIdp;
let api: ApiInstance;
let stack: Stack;
const logLines: string[] = [];

beforeAll(async () => {
  const logger = createLogger(
    { level: 'debug', name: 'api' },
    new Writable({
      write(chunk, _e, cb) {
        logLines.push(String(chunk));
        cb();
      },
    }),
  );
  stack = await startStack('shws', {
    logger,
    bridge: false,
    partner: false,
    env: { WS_HEARTBEAT_MS: '1000', WS_MAX_SOCKETS_PER_TENANT: '2' },
  });
  ({ idp, api } = stack);
});
afterAll(async () => {
  await stack?.close();
});

const gauge = async () =>
  (await api.metrics.registry.getSingleMetric('hub_websocket_connections')?.get())?.values[0]
    ?.value ?? 0;

test('a socket that stops answering pings is closed by the heartbeat, and one that answers stays open', async () => {
  const token = await idp.issue('tenant-heartbeat');
  const healthy = await openSocket(api.url, token);
  const dead = new WebSocket(`${api.url.replace(/^http/, 'ws')}/v1/events?access_token=${token}`);
  // A client whose process froze: it never answers a ping.
  (dead as unknown as { pong: () => void }).pong = () => undefined;
  const closed = new Promise<number>((resolve) => dead.once('close', (code) => resolve(code)));
  await new Promise((resolve) => dead.once('open', resolve));
  expect(await closed).toBe(1006);
  await new Promise((r) => setTimeout(r, 1_200));
  expect(healthy.events.map((e) => e.type)).toEqual(['ready']);
  await waitFor(async () => (await gauge()) === 1, 5_000, 'one socket left');
  await healthy.close();
});

test('a tenant may hold only the configured number of sockets; the next is refused with 429', async () => {
  const token = await idp.issue('tenant-many');
  const open: TenantSocket[] = [await openSocket(api.url, token), await openSocket(api.url, token)];
  try {
    await expect(openSocket(api.url, token)).rejects.toThrow(/429/);
    const other = await openSocket(api.url, await idp.issue('tenant-other'));
    await other.close();
  } finally {
    for (const s of open) await s.close();
  }
});

test('an event to many tenants reaches every socket of each as a text frame, and no other tenant', async () => {
  const tokens = await Promise.all(
    ['tenant-notice-a', 'tenant-notice-b', 'tenant-notice-quiet'].map((t) => idp.issue(t)),
  );
  // Raw clients, to see the frame type a browser's WebSocket would get (text, not a Blob).
  const frames: { tenant: string; text: string; isBinary: boolean }[] = [];
  const open = async (tenant: string, token: string) => {
    const ws = new WebSocket(
      `${api.url.replace(/^http/, 'ws')}/v1/events?access_token=${encodeURIComponent(token)}`,
    );
    ws.on('message', (data: Buffer, isBinary: boolean) =>
      frames.push({ tenant, text: data.toString('utf8'), isBinary }),
    );
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return ws;
  };
  const sockets = [
    await open('a', tokens[0] as string),
    await open('a', tokens[0] as string),
    await open('b', tokens[1] as string),
    await open('quiet', tokens[2] as string),
  ];
  try {
    await waitFor(
      () => frames.filter((f) => f.text.includes('"ready"')).length === 4,
      10_000,
      'four ready events',
    );
    const publisher = new TenantEventPublisher<TenantEvent>(stack.ctx.redis, stack.ctx.keyPrefix);
    const notice = buildOrderStatus({
      eventId: randomUUID(),
      orderId: randomUUID(),
      state: 'failed',
      version: 1,
      occurredAtMs: Date.now(),
      reason: 'Лифт на обслуживании',
    });
    // Published first on tenant a's channel, an event outside the tenant event contract is dropped.
    const outside = {
      type: 'notice',
      at: new Date().toISOString(),
      text: 'not a tenant event',
    } as unknown as TenantEvent;
    expect(await publisher.publish('tenant-notice-a', outside)).toBe(1);
    expect(
      await publisher.publishEach(['tenant-notice-a', 'tenant-notice-b', 'tenant-nobody'], notice),
    ).toBe(2);
    const got = () => frames.filter((f) => f.text.includes(notice.eventId));
    await waitFor(
      () => got().length === 3,
      10_000,
      'the notice on the three sockets of tenants a and b',
    );
    expect(
      got()
        .map((f) => f.tenant)
        .sort(),
    ).toEqual(['a', 'a', 'b']);
    for (const f of got()) {
      expect(f.isBinary).toBe(false);
      expect(JSON.parse(f.text)).toEqual(notice);
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(got()).toHaveLength(3);
    expect(frames.filter((f) => f.text.includes('not a tenant event'))).toEqual([]);
  } finally {
    for (const ws of sockets) ws.close();
  }
});

test('an upgrade on another path is refused with 404', async () => {
  const ws = new WebSocket(`${api.url.replace(/^http/, 'ws')}/v1/elsewhere`);
  ws.on('error', () => undefined);
  const status = await new Promise<number>((resolve) =>
    ws.once('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    }),
  );
  expect(status).toBe(404);
});

test('access tokens in URLs are redacted from logs', async () => {
  const token = await idp.issue('tenant-logged');
  const s = await openSocket(api.url, token);
  await s.close();
  await fetch(`${api.url}/v1/smart-home/subscriptions?access_token=${token}`);
  expect(logLines.join('\n')).not.toContain(token);
  expect(redactUrl('/v1/events?x=1&access_token=abc.def&y=2')).toBe(
    '/v1/events?x=1&access_token=[redacted]&y=2',
  );
});
