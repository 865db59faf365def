// A rollout's SIGTERM to an api pod with tenants' WebSockets open: the sockets are told the server
// is going away (1001, so the app reconnects to another pod) and the process exits 0 well inside
// its grace period, instead of waiting on the open sockets until the shutdown watchdog fires.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import WebSocket from 'ws';
import { createTestContext, DATABASE_URL, waitFor, type TestContext } from './support/context.js';
import { createVhost, type TestVhost } from './support/amqp.js';
import { expectCleanExit, listeningPort, startServiceProcess } from './support/process.js';
import { smartHomeEnv, startTenantIdp } from './support/smart-home.js';
import type { TenantIdp } from '../services/simulators/tenant-idp/server.js';

let ctx: TestContext;
let vhost: TestVhost;
let idp: TenantIdp;
beforeAll(async () => {
  ctx = await createTestContext('gracestop');
  vhost = await createVhost('gracestop');
  idp = await startTenantIdp();
});
afterAll(async () => {
  await idp?.close();
  await vhost?.close();
  await ctx?.close();
});

function startApi() {
  return startServiceProcess('services/api/main.ts', {
    ...smartHomeEnv(ctx, vhost.url, idp),
    DATABASE_URL,
    DATABASE_SCHEMA: ctx.schema,
    PORT: '0',
    LOG_LEVEL: 'info',
    INSTANCE_ID: 'api-grace',
    SHUTDOWN_TIMEOUT_MS: '20000',
  });
}

const portOf = (api: ReturnType<typeof startApi>) => listeningPort(api);

test('SIGTERM with tenant WebSockets open closes them with 1001 and exits 0 within seconds', async () => {
  const api = startApi();
  const sockets: WebSocket[] = [];
  try {
    const port = await portOf(api);
    const closes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/events`, {
        headers: { authorization: `Bearer ${await idp.issue(`tenant-grace-${i}`)}` },
      });
      ws.on('error', () => undefined);
      ws.on('close', (code) => closes.push(code));
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('unexpected-response', (_req, res) =>
          reject(new Error(`upgrade answered ${res.statusCode}`)),
        );
      });
      sockets.push(ws);
    }
    const started = Date.now();
    api.child.kill('SIGTERM');
    await expectCleanExit(api);
    expect(Date.now() - started).toBeLessThan(8_000);
    await waitFor(() => closes.length === 3, 5_000, 'every socket closed');
    expect(closes).toEqual([1001, 1001, 1001]);
  } finally {
    for (const ws of sockets) ws.terminate();
    if (api.child.exitCode === null && api.child.signalCode === null) api.child.kill('SIGKILL');
    await api.exited;
  }
}, 60_000);

test('SIGTERM with a tenant WebSocket whose client never answers the close frame still exits 0 within seconds', async () => {
  const api = startApi();
  let raw: net.Socket | undefined;
  try {
    const port = await portOf(api);
    // A client that upgrades, then reads nothing and answers nothing (a frozen app, a dead NAT entry).
    raw = net.connect(port, '127.0.0.1');
    raw.on('error', () => undefined);
    await new Promise<void>((resolve) => raw!.once('connect', () => resolve()));
    let received = '';
    raw.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    raw.write(
      [
        'GET /v1/events HTTP/1.1',
        `Host: 127.0.0.1:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        `Authorization: Bearer ${await idp.issue('tenant-grace-frozen')}`,
        '',
        '',
      ].join('\r\n'),
    );
    await waitFor(
      () => received.startsWith('HTTP/1.1 101') && received.includes('ready'),
      10_000,
      'the upgrade and the ready event',
    );
    const started = Date.now();
    api.child.kill('SIGTERM');
    await expectCleanExit(api);
    expect(Date.now() - started).toBeLessThan(8_000);
  } finally {
    raw?.destroy();
    if (api.child.exitCode === null && api.child.signalCode === null) api.child.kill('SIGKILL');
    await api.exited;
  }
}, 60_000);
