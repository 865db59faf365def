// The tenant WebSocket (`GET /v1/events`): authenticated with the tenant JWT before the upgrade,
// it pushes every event published for that tenant (subscription changes, command results, order
// status) to all of the tenant's sockets on this replica. Ping/pong closes dead sockets.
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { bearerToken, type Authenticator } from '../core/auth/tenant-jwt.js';
import { toError } from '../core/errors.js';
import { ApiError } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import { TenantEventSubscriber, type TenantEvent } from '../core/tenant-events.js';
import type { Redis } from 'ioredis';
import type { SmartHomeMetrics } from '../mq-bridge/metrics.js';

export const EVENTS_PATH = '/v1/events';

interface Conn {
  ws: WebSocket;
  alive: boolean;
}

export interface EventSocketsOptions {
  authenticator: Authenticator;
  /** A dedicated Redis connection for SUBSCRIBE. */
  subscriber: Redis;
  keyPrefix: string;
  logger: Logger;
  metrics: SmartHomeMetrics;
  heartbeatMs: number;
  maxSocketsPerTenant: number;
}

export class EventSockets {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  private readonly byTenant = new Map<string, Set<Conn>>();
  private readonly events: TenantEventSubscriber;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly o: EventSocketsOptions) {
    this.events = new TenantEventSubscriber(o.subscriber, o.keyPrefix, o.logger, (tenantId, event) => this.deliver(tenantId, event));
    this.heartbeat = setInterval(() => this.beat(), o.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Takes over HTTP upgrades on `server` for EVENTS_PATH; other upgrade paths are refused. */
  attach(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.upgrade(req, socket, head);
    });
  }

  get connections(): number {
    let n = 0;
    for (const set of this.byTenant.values()) n += set.size;
    return n;
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const set of this.byTenant.values()) for (const c of set) c.ws.close(1001, 'server shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    if (path !== EVENTS_PATH) return refuse(socket, 404, 'not_found', `No WebSocket at ${path}; use ${EVENTS_PATH}.`);
    const token = bearerToken(req.headers, req.url);
    if (!token) return refuse(socket, 401, 'unauthenticated', 'Pass the tenant access token as Authorization: Bearer or ?access_token=.');
    let tenantId: string;
    try {
      tenantId = (await this.o.authenticator.verify(token)).tenantId;
    } catch (thrown) {
      if (thrown instanceof ApiError) return refuse(socket, thrown.statusCode, thrown.code, thrown.message);
      this.o.logger.error({ err: toError(thrown) }, 'websocket authentication failed');
      return refuse(socket, 503, 'auth_unavailable', 'Token verification is unavailable; retry shortly.');
    }
    if ((this.byTenant.get(tenantId)?.size ?? 0) >= this.o.maxSocketsPerTenant)
      return refuse(socket, 429, 'too_many_sockets', `At most ${this.o.maxSocketsPerTenant} sockets per tenant; close an old one.`);
    this.wss.handleUpgrade(req, socket, head, (ws) => void this.onConnection(ws, tenantId));
  }

  private async onConnection(ws: WebSocket, tenantId: string): Promise<void> {
    const conn: Conn = { ws, alive: true };
    let set = this.byTenant.get(tenantId);
    if (!set) this.byTenant.set(tenantId, (set = new Set()));
    set.add(conn);
    this.o.metrics.wsConnections.inc();
    ws.on('pong', () => (conn.alive = true));
    ws.on('error', (err) => this.o.logger.debug({ err }, 'websocket error'));
    ws.on('close', () => {
      set.delete(conn);
      if (set.size === 0) this.byTenant.delete(tenantId);
      this.o.metrics.wsConnections.dec();
      void this.events.remove(tenantId);
    });
    try {
      await this.events.add(tenantId);
    } catch (thrown) {
      this.o.logger.warn({ err: toError(thrown) }, 'could not subscribe to tenant events; closing the socket');
      ws.close(1011, 'events unavailable');
      return;
    }
    // The client knows from here on that no event is missed.
    send(ws, { type: 'ready', at: new Date().toISOString() });
  }

  private deliver(tenantId: string, event: TenantEvent): void {
    const set = this.byTenant.get(tenantId);
    if (!set) return;
    const data = JSON.stringify(event);
    for (const c of set) c.ws.send(data);
    this.o.metrics.wsEvents.inc({ type: event.type }, set.size);
  }

  private beat(): void {
    for (const set of this.byTenant.values())
      for (const c of set) {
        if (!c.alive) {
          c.ws.terminate();
          continue;
        }
        c.alive = false;
        c.ws.ping();
      }
  }
}

function send(ws: WebSocket, event: TenantEvent): void {
  ws.send(JSON.stringify(event));
}

function refuse(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${code}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
