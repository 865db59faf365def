// A partner endpoint that misbehaves on demand (redirects, huge bodies, absurd Retry-After), over
// plain HTTP or TLS, recording every request it receives and how many body bytes it got out.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { loadConfig, outboundEnv } from '../../services/core/config.js';
import { createMetrics } from '../../services/core/metrics.js';
import { OutboundPolicy } from '../../services/core/outbound.js';
import type { Certificate } from '../../services/simulators/tls.js';
import { track } from './leaks.js';

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export type PartnerHandler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  server: PartnerServer,
) => void | Promise<void>;

export interface PartnerServer {
  url: string;
  requests: ReceivedRequest[];
  /** Body bytes the handler managed to write before the client went away. */
  bytesSent: number;
  handle(h: PartnerHandler): void;
  close(): Promise<void>;
}

/** Answers `status` with `headers` and a JSON body. */
export const answer =
  (status: number, body: unknown, headers: Record<string, string> = {}): PartnerHandler =>
  (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };

/**
 * Streams `totalBytes` of a JSON-looking body in 64 KiB chunks, honouring backpressure, so that
 * `bytesSent` shows how much the client really read before it hung up.
 */
export const hugeBody =
  (totalBytes: number, status = 200): PartnerHandler =>
  async (_req, res, server) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    res.write('{"items":[');
    while (server.bytesSent < totalBytes && !res.destroyed) {
      server.bytesSent += chunk.length;
      if (!res.write(chunk)) {
        await new Promise<void>((r) => {
          res.once('drain', r);
          res.once('close', r);
        });
      }
    }
    res.end(']}');
  };

export async function startPartnerServer(o: { tls?: Certificate } = {}): Promise<PartnerServer> {
  let handler: PartnerHandler = answer(200, { items: [] });
  const sockets = new Set<import('node:net').Socket>();
  const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
    self.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    req.resume();
    res.on('error', () => undefined);
    req.on('end', () => void Promise.resolve(handler(req, res, self)).catch(() => res.destroy()));
  };
  const server = o.tls
    ? https.createServer({ key: o.tls.key, cert: o.tls.cert }, listener)
    : http.createServer(listener);
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const untrack = track('partner server');
  const self: PartnerServer = {
    url: `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests: [],
    bytesSent: 0,
    handle(h) {
      handler = h;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      untrack();
    },
  };
  return self;
}

/** The outbound policy as tests run it: http allowed (the simulators), otherwise the defaults. */
export function testOutbound(env: Record<string, string> = {}): OutboundPolicy {
  return new OutboundPolicy(
    loadConfig(outboundEnv, { OUTBOUND_ALLOW_HTTP: 'true', ...env }),
    pino({ level: 'silent' }),
    createMetrics(),
  );
}
