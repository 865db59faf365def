// The tenant WebSocket (`GET /v1/events`): authenticated with the tenant JWT before the upgrade,
// it pushes every event published for that tenant (subscription changes, command results, order
// status) to all of the tenant's sockets on this replica, and re-delivers from PostgreSQL those a
// lost Redis subscription missed (at least once). Ping/pong closes dead sockets. What it sends is
// the tenant event contract (services/contracts/tenant-events.ts): an event arriving on a tenant's
// channel that is not one of its events is logged and dropped, never sent.
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { bearerToken, type Authenticator } from '../core/auth/tenant-jwt.js';
import { clip } from '../core/bounds.js';
import { toError } from '../core/errors.js';
import { ApiError } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import { buildReady, tenantEvent, type TenantEvent } from '../contracts/tenant-events.js';
import { TenantEventCatchUp, type TenantEventSource } from '../core/tenant-event-catch-up.js';
import { TenantEventSubscriber } from '../core/tenant-events.js';
import type { Redis } from 'ioredis';
import type { SmartHomeMetrics } from '../domains/smart-home/metrics.js';

export const EVENTS_PATH = '/v1/events';

/**
 * A tenant socket carries its own state, so that one set of listeners serves every socket: at tens
 * of thousands of sockets per replica, per-socket closures and a state object add up.
 */
class TenantSocket extends WebSocket {
  tenantId = '';
  /** Answered the last ping (or is new). */
  alive = true;
}

/** Events go out as text frames; the payload is encoded once per event, not once per socket. */
const TEXT = { binary: false } as const;

interface EventSocketsOptions {
  authenticator: Authenticator;
  /** A dedicated Redis connection for SUBSCRIBE. */
  subscriber: Redis;
  keyPrefix: string;
  logger: Logger;
  metrics: SmartHomeMetrics;
  heartbeatMs: number;
  maxSocketsPerTenant: number;
  /** A socket with more than this waiting in its send buffer is closed (a client not reading). */
  maxBufferedBytes: number;
}

/** Close code for a client that does not keep up: Try Again Later (RFC 6455 registry). */
const SLOW_CONSUMER_CLOSE = 1013;

/** How long a shutdown waits for tenant sockets to answer the close frame before cutting them. */
const CLOSE_GRACE_MS = 2_000;

export class EventSockets {
  // No permessage-deflate (a zlib context per socket costs far more than the small events it would
  // save) and no client set of ws's own: the sockets are tracked per tenant below.
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: 4096,
    perMessageDeflate: false,
    clientTracking: false,
    WebSocket: TenantSocket,
  });
  private readonly byTenant = new Map<string, Set<TenantSocket>>();
  private readonly events: TenantEventSubscriber<TenantEvent>;
  private readonly catchUp: TenantEventCatchUp<TenantEvent>;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly o: EventSocketsOptions) {
    const deliver = (tenantId: string, event: TenantEvent, json?: string) =>
      this.deliver(tenantId, event, json);
    this.catchUp = new TenantEventCatchUp<TenantEvent>({
      deliver,
      logger: o.logger,
      redelivered: (type, n) => o.metrics.wsRedelivered.inc({ type }, n),
    });
    this.events = new TenantEventSubscriber(
      o.subscriber,
      o.keyPrefix,
      o.logger,
      tenantEvent,
      deliver,
      (tenants, lostForMs) => this.catchUp.run(tenants, lostForMs),
    );
    this.heartbeat = setInterval(() => this.beat(), o.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Events of this type are re-delivered from `source` after the Redis subscription was lost. */
  redeliverFrom(source: TenantEventSource<TenantEvent>): void {
    this.catchUp.add(source);
  }

  /** Takes over HTTP upgrades on `server` for EVENTS_PATH; other upgrade paths are refused. */
  attach(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // First of all: Node removes its own listener on upgrade, and a peer's reset on a socket with
      // no 'error' listener is an uncaught exception that ends the process.
      socket.on('error', this.onUpgradeSocketError);
      this.upgrade(req, socket, head).catch((thrown: unknown) => {
        this.o.logger.error({ err: toError(thrown) }, 'websocket upgrade failed');
        socket.destroy();
      });
    });
  }

  private readonly onUpgradeSocketError = (err: Error): void => {
    this.o.logger.debug({ err }, 'websocket upgrade socket error');
  };

  get connections(): number {
    let n = 0;
    for (const set of this.byTenant.values()) n += set.size;
    return n;
  }

  /**
   * Tells every tenant socket the server is going away (1001, the app reconnects elsewhere) and
   * waits for their close handshakes, CLOSE_GRACE_MS at most: a client that never answers the close
   * frame (a frozen app, a dead NAT entry) would otherwise hold the shutdown for ws's 30 s, past the
   * pod's grace period. Those left are cut.
   */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    this.events.close();
    const open = [...this.byTenant.values()].flatMap((set) => [...set]);
    const closed = open.map(
      (ws) =>
        new Promise<void>((resolve) =>
          ws.readyState === WebSocket.CLOSED ? resolve() : ws.once('close', () => resolve()),
        ),
    );
    for (const ws of open) ws.close(1001, 'server shutting down');
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'late'>(
      (resolve) => (timer = setTimeout(() => resolve('late'), CLOSE_GRACE_MS)),
    );
    if ((await Promise.race([Promise.all(closed), grace])) === 'late') {
      const left = open.filter((ws) => ws.readyState !== WebSocket.CLOSED);
      this.o.logger.info(
        { sockets: left.length },
        `tenant websockets that did not answer the close frame within ${CLOSE_GRACE_MS} ms cut`,
      );
      for (const ws of left) ws.terminate();
    }
    clearTimeout(timer);
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    if (path !== EVENTS_PATH) {
      return refuse(
        socket,
        404,
        'not_found',
        `No WebSocket at ${clip(path ?? '', 200)}; use ${EVENTS_PATH}.`,
      );
    }
    const token = bearerToken(req.headers, req.url);
    if (!token) {
      return refuse(
        socket,
        401,
        'unauthenticated',
        'Pass the tenant access token as Authorization: Bearer or ?access_token=.',
      );
    }
    let tenantId: string;
    try {
      tenantId = (await this.o.authenticator.verify(token)).tenantId;
    } catch (thrown) {
      if (thrown instanceof ApiError) {
        return refuse(socket, thrown.statusCode, thrown.code, thrown.message, thrown.headers);
      }
      this.o.logger.error({ err: toError(thrown) }, 'websocket authentication failed');
      return refuse(
        socket,
        503,
        'auth_unavailable',
        'Token verification is unavailable; retry shortly.',
      );
    }
    // The client may have gone while its token was being verified.
    if (socket.destroyed) return;
    if ((this.byTenant.get(tenantId)?.size ?? 0) >= this.o.maxSocketsPerTenant) {
      return refuse(
        socket,
        429,
        'too_many_sockets',
        `At most ${this.o.maxSocketsPerTenant} sockets per tenant; close an old one.`,
      );
    }
    // ws listens for the socket's errors from here on (and on the WebSocket once it is open).
    socket.off('error', this.onUpgradeSocketError);
    this.wss.handleUpgrade(
      req,
      socket,
      head,
      (ws) => void this.onConnection(ws as TenantSocket, tenantId),
    );
  }

  private readonly onSocketError = (err: Error): void => {
    this.o.logger.debug({ err }, 'websocket error');
  };

  private readonly onSocketClose = ((sockets: EventSockets) =>
    function (this: WebSocket): void {
      sockets.forget(this as TenantSocket);
    })(this);

  private forget(ws: TenantSocket): void {
    const set = this.byTenant.get(ws.tenantId);
    if (!set?.delete(ws)) return;
    if (set.size === 0) this.byTenant.delete(ws.tenantId);
    this.o.metrics.wsConnections.dec();
    void this.events.remove(ws.tenantId);
  }

  private async onConnection(ws: TenantSocket, tenantId: string): Promise<void> {
    ws.tenantId = tenantId;
    let set = this.byTenant.get(tenantId);
    if (!set) this.byTenant.set(tenantId, (set = new Set()));
    set.add(ws);
    this.o.metrics.wsConnections.inc();
    ws.on('pong', onPong);
    ws.on('error', this.onSocketError);
    ws.on('close', this.onSocketClose);
    try {
      await this.events.add(tenantId);
    } catch (thrown) {
      this.o.logger.warn(
        { err: toError(thrown) },
        'could not subscribe to tenant events; closing the socket',
      );
      ws.close(1011, 'events unavailable');
      return;
    }
    // The client knows from here on that no event is missed.
    send(ws, buildReady());
  }

  /** `json`: the event as it was published, when it came that way (it is then not encoded again). */
  private deliver(tenantId: string, event: TenantEvent, json?: string): void {
    const set = this.byTenant.get(tenantId);
    if (!set) return;
    // A Buffer is framed without a copy; a string would be encoded for each socket.
    const data = Buffer.from(json ?? JSON.stringify(event));
    let sent = 0;
    for (const ws of set) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      if (ws.bufferedAmount > this.o.maxBufferedBytes) {
        this.closeSlow(ws, tenantId);
        continue;
      }
      ws.send(data, TEXT);
      sent += 1;
    }
    this.o.metrics.wsEvents.inc({ type: event.type }, sent);
  }

  /**
   * The close frame queues behind the unread events: a client that resumes reading gets them and
   * then 1013; one that never does is dropped by ws's close timeout or the next heartbeats. Either
   * way nothing more is queued, so its memory stays at the bound plus one event.
   */
  private closeSlow(ws: WebSocket, tenantId: string): void {
    this.o.metrics.wsSlowConsumers.inc();
    this.o.logger.warn(
      { tenantId, bufferedBytes: ws.bufferedAmount },
      'closing a tenant websocket: slow consumer (the client is not reading its events)',
    );
    ws.close(SLOW_CONSUMER_CLOSE, 'slow consumer; reconnect');
  }

  private beat(): void {
    for (const set of this.byTenant.values()) {
      for (const ws of set) {
        if (!ws.alive) {
          ws.terminate();
          continue;
        }
        ws.alive = false;
        ws.ping();
      }
    }
  }
}

function onPong(this: WebSocket): void {
  (this as TenantSocket).alive = true;
}

function send(ws: WebSocket, event: TenantEvent): void {
  ws.send(JSON.stringify(event));
}

/**
 * How long a refused socket may linger after the answer before it is destroyed. Node's HTTP server
 * allows half-open sockets, so `end()` alone leaves the connection to a client that never closes
 * its side open for good; a second is ample for a client to read a few hundred bytes.
 */
const REFUSE_LINGER_MS = 1_000;

/** Answers the upgrade request with an HTTP error and lets go of the socket, whatever the client does. */
function refuse(
  socket: Duplex,
  status: number,
  code: string,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ error: { code, message } });
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${status} ${code}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}connection: close\r\n\r\n${body}`,
  );
  const linger = setTimeout(() => socket.destroy(), REFUSE_LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
}
