// Clients that reset their TCP connection at any stage of a tenant WebSocket upgrade — before the
// headers end, while the token is being verified, after the refusal, after 101 — against the real
// api entry point in a child process: no socket error may end the process, and a refused socket is
// closed by the server even when its client stays silent.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { createTestContext, DATABASE_URL, waitFor, type TestContext } from './support/context.js';
import { createVhost, type TestVhost } from './support/amqp.js';
import { track } from './support/leaks.js';
import {
  expectCleanExit,
  listeningPort,
  startServiceProcess,
  type ServiceProcess,
} from './support/process.js';
import { smartHomeEnv, startTenantIdp } from './support/smart-home.js';
import type { TenantIdp } from '../services/simulators/tenant-idp/server.js';

/** The identity provider's JWKS behind a gate: while closed, every token verification waits. */
interface GatedJwks {
  url: string;
  hits: number;
  open(): void;
  close(): Promise<void>;
}

async function startGatedJwks(target: string): Promise<GatedJwks> {
  let isOpen = false;
  const held: (() => void)[] = [];
  const g = { hits: 0 } as GatedJwks;
  const server: Server = createServer((_req, res) => {
    g.hits += 1;
    const answer = () =>
      void fetch(target)
        .then(async (r) =>
          res.writeHead(r.status, { 'content-type': 'application/json' }).end(await r.text()),
        )
        .catch(() => res.destroy());
    if (isOpen) answer();
    else held.push(answer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const untrack = track('gated JWKS');
  g.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  g.open = () => {
    isOpen = true;
    for (const a of held.splice(0)) a();
  };
  g.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
      untrack();
    });
  return g;
}

/** A raw TCP client that records what the server sends and whether it closed or failed. */
interface RawClient {
  socket: Socket;
  received(): string;
  ended: boolean;
  closed: boolean;
  failed?: Error;
}

function rawClient(port: number, o: { allowHalfOpen?: boolean } = {}): Promise<RawClient> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: o.allowHalfOpen ?? false });
  let data = '';
  const c: RawClient = { socket, received: () => data, ended: false, closed: false };
  socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
  socket.on('end', () => (c.ended = true));
  socket.on('close', () => (c.closed = true));
  socket.on('error', (e) => (c.failed = e));
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(c));
    socket.once('error', reject);
  });
}

function upgradeHeaders(port: number, token?: string, path = '/v1/events'): string {
  return [
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...(token ? [`Authorization: Bearer ${token}`] : []),
    '',
    '',
  ].join('\r\n');
}

let ctx: TestContext;
let vhost: TestVhost;
let idp: TenantIdp;
let stranger: TenantIdp;
let jwks: GatedJwks;
let api: ServiceProcess;
let port: number;
let exitCode: number | string | undefined;

beforeAll(async () => {
  ctx = await createTestContext('wsreset');
  vhost = await createVhost('wsreset');
  idp = await startTenantIdp();
  // Signs well-formed tokens with a key the hub does not trust.
  stranger = await startTenantIdp();
  jwks = await startGatedJwks(idp.jwksUrl);
  api = startServiceProcess('services/api/main.ts', {
    ...smartHomeEnv(ctx, vhost.url, idp, { TENANT_JWKS_URL: jwks.url }),
    DATABASE_URL,
    DATABASE_SCHEMA: ctx.schema,
    PORT: '0',
    LOG_LEVEL: 'info',
    INSTANCE_ID: 'api-resets',
  });
  void api.exited.then((code) => (exitCode = code));
  port = await listeningPort(api);
}, 60_000);
afterAll(async () => {
  try {
    // A process that died in a test has said why there; one still running must stop cleanly.
    if (exitCode === undefined) {
      api.child.kill('SIGTERM');
      await expectCleanExit(api);
    }
  } finally {
    await api.exited;
    await jwks?.close();
    await stranger?.close();
    await idp?.close();
    await vhost?.close();
    await ctx?.close();
  }
});

/** The api process is running and answers /healthz; its output says why when it is not. */
async function expectAlive(): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch((e: unknown) => e as Error);
  if (exitCode !== undefined || res instanceof Error) {
    console.log(`api exited with ${String(exitCode)}:\n${api.output()}`);
  }
  expect(exitCode).toBeUndefined();
  expect(res instanceof Error ? res.message : res.status).toBe(200);
}

test('TCP resets at every stage of a WebSocket upgrade, with no token, a bad token or a good token, never end the api process', async () => {
  const good = await idp.issue('tenant-resets');
  const bad = await stranger.issue('tenant-resets');
  const tokens = { none: undefined, bad, good };

  // While verification waits on the identity provider (first use of its keys): bad and good tokens.
  const verifying = await Promise.all(
    [bad, good, bad, good].map(async (t) => {
      const c = await rawClient(port);
      c.socket.write(upgradeHeaders(port, t));
      return c;
    }),
  );
  await waitFor(() => jwks.hits > 0, 10_000, 'token verification to ask for the keys');
  // A round trip on another connection: the upgrade requests written before it have been read.
  await expectAlive();
  for (const c of verifying) c.socket.resetAndDestroy();
  await waitFor(() => verifying.every((c) => c.closed), 5_000, 'the reset sockets to close');
  jwks.open();
  await expectAlive();

  for (const [name, token] of Object.entries(tokens)) {
    // Before the headers end.
    const partial = await rawClient(port);
    partial.socket.write(upgradeHeaders(port, token).slice(0, 60));
    await expectAlive();
    partial.socket.resetAndDestroy();

    // After the server's answer: a refusal (no or bad token, or another path) or 101 Switching Protocols.
    for (const path of ['/v1/events', '/v1/elsewhere']) {
      const answered = await rawClient(port);
      answered.socket.write(upgradeHeaders(port, token, path));
      const status =
        name === 'good' && path === '/v1/events' ? '101' : path === '/v1/events' ? '401' : '404';
      await waitFor(
        () => answered.received().startsWith(`HTTP/1.1 ${status}`),
        5_000,
        `${status} for a ${name} token on ${path}`,
      );
      answered.socket.resetAndDestroy();
    }
    await expectAlive();
  }

  // After 101 and the `ready` event, while the server is subscribed for the tenant.
  const open = await rawClient(port);
  open.socket.write(upgradeHeaders(port, good));
  await waitFor(() => open.received().includes('"ready"'), 5_000, 'the ready event');
  open.socket.resetAndDestroy();
  await expectAlive();
  expect(api.output()).not.toMatch(/Unhandled 'error' event|ECONNRESET/);
}, 30_000);

test('a refused upgrade is closed by the server within seconds even when the client never closes its side', async () => {
  // allowHalfOpen: the client keeps its side open after the server's FIN, as a silent attacker would.
  const silent = await Promise.all(
    [undefined, 'not-a-jwt'].map(async (t) => {
      const c = await rawClient(port, { allowHalfOpen: true });
      c.socket.write(upgradeHeaders(port, t));
      return c;
    }),
  );
  for (const c of silent) {
    await waitFor(() => c.received().startsWith('HTTP/1.1 401'), 5_000, 'the 401');
  }
  // Once the server has let go of the connection, the client's next write meets a reset.
  await waitFor(
    () => {
      for (const c of silent) if (!c.closed) c.socket.write('x');
      return silent.every((c) => c.closed);
    },
    5_000,
    'the server to close the refused sockets',
  );
  await expectAlive();
});
