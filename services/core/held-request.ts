// An outbound HTTP request whose connection is opened first and whose bytes are written only when
// the caller says so, synchronously: a rate-limited caller checks its slot's deadline and writes in
// the same tick, so neither connecting (TCP, TLS) nor any pause can come between the check and the
// request leaving. The answer is read under the outbound policy (no redirects, bounded size).
import http from 'node:http';
import https from 'node:https';
import type { OutboundPolicy } from './outbound.js';

interface HeldAnswer {
  status: number;
  ok: boolean;
  text: string;
  header(name: string): string | undefined;
}

interface HeldRequest {
  /** Resolves once the request has an open connection (reused or new); rejects if it cannot get one. */
  connected: Promise<void>;
  /** Writes the request now, in this tick, and starts the answer's timeout. Call once. */
  send(): void;
  /** The answer, once sent; rejects on errors, timeout, a redirect or an answer over the limit. */
  answer: Promise<HeldAnswer>;
  /** Gives the request up before it was sent (nothing reaches the partner); `answer` rejects with `reason`. */
  cancel(reason: Error): void;
}

interface HeldRequestOptions {
  partner: string;
  url: URL;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body: string;
  agent: http.Agent;
  /** From send() to the end of the answer. */
  timeoutMs: number;
  signal?: AbortSignal;
  outbound: OutboundPolicy;
}

export function holdRequest(o: HeldRequestOptions): HeldRequest {
  const transport = o.url.protocol === 'https:' ? https : http;
  let onConnected!: () => void;
  let onConnectFailed!: (e: Error) => void;
  const connected = new Promise<void>((resolve, reject) => {
    onConnected = resolve;
    onConnectFailed = reject;
  });
  connected.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  let req!: http.ClientRequest;
  const answer = new Promise<HeldAnswer>((resolve, reject) => {
    req = transport.request(
      o.url,
      {
        method: o.method,
        agent: o.agent,
        signal: o.signal,
        headers: { ...o.headers, 'content-length': String(Buffer.byteLength(o.body)) },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        try {
          o.outbound.assertNotRedirect(o.partner, status);
        } catch (refused) {
          res.destroy();
          reject(refused as Error);
          return;
        }
        o.outbound.readNode(o.partner, res).then(
          (text) =>
            resolve({
              status,
              ok: status >= 200 && status < 300,
              text,
              header: (name) => {
                const v = res.headers[name.toLowerCase()];
                return Array.isArray(v) ? v[0] : v;
              },
            }),
          reject,
        );
      },
    );
    req.on('error', (e) => {
      onConnectFailed(e);
      reject(e);
    });
    req.on('socket', (socket) => {
      // A pooled socket is open already; a new one is ready once connected (and, for TLS, secured).
      if (req.reusedSocket || !socket.connecting) onConnected();
      else socket.once(o.url.protocol === 'https:' ? 'secureConnect' : 'connect', onConnected);
    });
  });
  const settled = () => clearTimeout(timer);
  answer.then(settled, settled);
  return {
    connected,
    answer,
    send() {
      timer = setTimeout(() => {
        const e = new Error(`${o.partner} gave no answer within ${o.timeoutMs} ms`);
        e.name = 'TimeoutError';
        req.destroy(e);
      }, o.timeoutMs);
      req.end(o.body);
    },
    cancel(reason) {
      req.destroy(reason);
    },
  };
}
