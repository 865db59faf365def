// A tenant WebSocket whose client stops reading, on the real servers: once the events waiting in
// its send buffer pass WS_MAX_BUFFERED_BYTES the socket is closed with 1013 (counted and logged
// once), and nothing more is queued for it, so a slow consumer cannot grow the api's memory.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { WebSocket } from 'ws';
import { buildOrderStatus, type TenantEvent } from '../services/contracts/tenant-events.js';
import { createLogger } from '../services/core/logger.js';
import { TenantEventPublisher } from '../services/core/tenant-events.js';
import { track } from './support/leaks.js';
import { startStack, type Stack } from './support/smart-home.js';

const BOUND = 64 * 1024;
const EVENT_BYTES = 256 * 1024;
let stack: Stack;
const logLines: string[] = [];

beforeAll(async () => {
  const logger = createLogger(
    { level: 'info', name: 'api' },
    new Writable({
      write(chunk, _e, cb) {
        logLines.push(String(chunk));
        cb();
      },
    }),
  );
  stack = await startStack('wsslow', {
    logger,
    bridge: false,
    partner: false,
    env: { WS_MAX_BUFFERED_BYTES: String(BOUND) },
  });
});
afterAll(async () => {
  await stack?.close();
});

const slowClosed = async () =>
  (
    await stack.api.metrics.registry
      .getSingleMetric('hub_websocket_slow_consumers_closed_total')
      ?.get()
  )?.values[0]?.value ?? 0;

test('a socket whose client stops reading is closed with 1013 once its buffer passes the bound, and later events are not queued for it', async () => {
  const tenant = `tenant-slow-${Date.now().toString(36)}`;
  const token = await stack.idp.issue(tenant);
  const ws = new WebSocket(
    `${stack.api.url.replace(/^http/, 'ws')}/v1/events?access_token=${token}`,
  );
  const untrack = track('slow tenant websocket');
  const seqs: number[] = [];
  let receivedBytes = 0;
  ws.on('message', (data: Buffer) => {
    receivedBytes += data.length;
    const e = JSON.parse(data.toString()) as { type: string; version?: number };
    if (typeof e.version === 'number') seqs.push(e.version);
  });
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.on('error', () => undefined);
  try {
    await new Promise((resolve) => ws.once('message', resolve));
    // The client stops reading: the kernel's buffers fill, then the server's.
    ws.pause();
    const events = new TenantEventPublisher<TenantEvent>(stack.ctx.redis, stack.ctx.keyPrefix);
    const pad = 'x'.repeat(EVENT_BYTES);
    // Order status events of one order, numbered by their version and padded by their reason.
    const orderId = randomUUID();
    const publish = (seq: number) =>
      events.publish(
        tenant,
        buildOrderStatus({
          eventId: randomUUID(),
          orderId,
          state: 'failed',
          version: seq,
          occurredAtMs: Date.now(),
          reason: pad,
        }),
      );
    let seq = 0;
    // 200 events of 256 KiB: far more than loopback's kernel buffers (a few MiB) and the bound.
    while ((await slowClosed()) === 0 && seq < 200) await publish(++seq);
    expect(await slowClosed()).toBe(1);
    const firstAfterClose = seq + 1;
    for (let i = 0; i < 40; i++) await publish(++seq);
    const published = seq * EVENT_BYTES;

    ws.resume();
    expect(await closed).toBe(1013);
    expect(seqs.every((s) => s < firstAfterClose)).toBe(true);
    // What the client got is what the server had queued: a fraction of what was published.
    expect(receivedBytes).toBeLessThan(published / 2);
    expect(logLines.filter((l) => l.includes('slow consumer')).length).toBe(1);
  } finally {
    ws.terminate();
    untrack();
  }
}, 30_000);
