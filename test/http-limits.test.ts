// The HTTP scaffold every service runs, against hostile clients: headers trickled byte by byte
// (slowloris), idle keep-alive connections, more connections than the process allows, and request
// ids that are not safe to log or echo.
import { afterEach, expect, test } from '@jest/globals';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { WebSocket, WebSocketServer } from 'ws';
import { httpServerEnv, loadConfig } from '../services/core/config.js';
import { createHttpServer } from '../services/core/http.js';
import { createMetrics, type Metrics } from '../services/core/metrics.js';
import { createLogger } from '../services/core/logger.js';
import { waitFor } from './support/context.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let app: FastifyInstance | undefined;
const clients: Socket[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await app?.close();
  app = undefined;
});

/** A server with small limits so that each one is reached within a second. */
async function serve(
  env: Record<string, string> = {},
): Promise<{ url: string; port: number; metrics: Metrics }> {
  const limits = loadConfig(httpServerEnv, {
    HTTP_HEADERS_TIMEOUT_MS: '400',
    HTTP_REQUEST_TIMEOUT_MS: '1000',
    HTTP_KEEP_ALIVE_TIMEOUT_MS: '500',
    ...env,
  });
  const metrics = createMetrics();
  app = createHttpServer({
    logger: createLogger({ level: 'silent' }),
    metrics,
    readiness: [],
    limits,
  });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { url, port: (app.server.address() as AddressInfo).port, metrics };
}

interface Raw {
  socket: Socket;
  received(): string;
  closed: boolean;
}

function raw(port: number): Promise<Raw> {
  const socket = connect({ port, host: '127.0.0.1' });
  clients.push(socket);
  let data = '';
  const r: Raw = { socket, received: () => data, closed: false };
  socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
  socket.on('close', () => (r.closed = true));
  socket.on('error', () => undefined);
  return new Promise((resolve) => socket.once('connect', () => resolve(r)));
}

test('a client that trickles its headers is answered 408 and disconnected once the headers timeout passes', async () => {
  const { port } = await serve();
  const c = await raw(port);
  const started = Date.now();
  c.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  // One header byte every 50 ms: each keeps the socket busy, none completes the headers.
  const drip = setInterval(() => !c.closed && c.socket.write('x'), 50);
  try {
    await waitFor(() => c.closed, 5_000, 'the server to drop the slow client');
  } finally {
    clearInterval(drip);
  }
  expect(Date.now() - started).toBeGreaterThanOrEqual(400);
  expect(c.received()).toMatch(/^HTTP\/1\.1 408/);
});

test('a keep-alive connection left idle is closed after the keep-alive timeout', async () => {
  const { port } = await serve();
  const c = await raw(port);
  c.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  await waitFor(() => c.received().includes('"ok"'), 2_000, 'the answer');
  expect(c.received()).toMatch(/keep-alive/i);
  await waitFor(() => c.closed, 3_000, 'the idle connection to close');
});

test('an upgraded connection (a WebSocket) is not cut by the request, headers or keep-alive timeouts', async () => {
  const { url } = await serve();
  const wss = new WebSocketServer({ noServer: true });
  app?.server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => undefined);
    // Longer than the headers timeout, as a slow token verification would be.
    setTimeout(
      () => wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m) => ws.send(m))),
      600,
    );
  });
  const ws = new WebSocket(url.replace(/^http/, 'ws'));
  ws.on('error', () => undefined);
  try {
    await new Promise((resolve) => ws.once('open', resolve));
    const opened = Date.now();
    let echoes = 0;
    ws.on('message', () => (echoes += 1));
    // Traffic for three times the request timeout; each message must come back.
    await waitFor(
      () => {
        if (ws.readyState === WebSocket.OPEN) ws.send('x');
        return Date.now() - opened > 3_000 || ws.readyState !== WebSocket.OPEN;
      },
      5_000,
      'three seconds of traffic',
    );
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(echoes).toBeGreaterThan(10);
  } finally {
    ws.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  }
});

test('connections beyond HTTP_MAX_CONNECTIONS are refused and counted, and served again once one closes', async () => {
  const { url, port, metrics } = await serve({
    HTTP_MAX_CONNECTIONS: '2',
    HTTP_KEEP_ALIVE_TIMEOUT_MS: '60000',
    HTTP_HEADERS_TIMEOUT_MS: '60000',
    HTTP_REQUEST_TIMEOUT_MS: '60000',
  });
  const held = [await raw(port), await raw(port)];
  // Answered requests: the server holds both connections (kept alive).
  for (const h of held) h.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  await waitFor(
    () => held.every((h) => h.received().includes('"ok"')),
    2_000,
    'two connections served',
  );
  const refused = await raw(port);
  refused.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  await waitFor(() => refused.closed, 2_000, 'the third connection to be dropped');
  expect(refused.received()).toBe('');
  const counted = await metrics.registry
    .getSingleMetric('hub_http_connections_refused_total')
    ?.get();
  expect(counted?.values[0]?.value).toBe(1);
  held[0]?.socket.destroy();
  await waitFor(
    async () =>
      (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(500) })).status === 200,
    2_000,
    'a connection to be served again',
  );
});

test('a safe client request id is echoed; a hostile or oversized one is replaced by a generated id', async () => {
  const { url, port } = await serve();
  const echoed = await fetch(`${url}/healthz`, {
    headers: { 'x-request-id': 'crm-1234.abc:ZZ_9' },
  });
  expect(echoed.headers.get('x-request-id')).toBe('crm-1234.abc:ZZ_9');
  for (const hostile of [
    'a b',
    '<script>alert(1)</script>',
    '"}{"level":60',
    'x'.repeat(129),
    'id;drop table x',
    '',
  ]) {
    const res = await fetch(`${url}/nowhere`, { headers: { 'x-request-id': hostile } });
    const id = res.headers.get('x-request-id') ?? '';
    expect(id).toMatch(UUID);
    expect(((await res.json()) as { error: { requestId: string } }).error.requestId).toBe(id);
  }
  // Bytes fetch will not send: non-ASCII characters, and the header twice.
  const c = await raw(port);
  c.socket.write(
    'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: \u00e9t\u00e9\r\nX-Request-Id: ok\r\nConnection: close\r\n\r\n',
  );
  await waitFor(() => c.closed, 2_000, 'the answer');
  expect(/x-request-id: ([^\r]*)/i.exec(c.received())?.[1]).toMatch(UUID);
});
