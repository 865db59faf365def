// A raw HTTP/1.1 client on node:net: sends exactly the bytes a fuzz case made (CRLF in headers,
// duplicate or lying Content-Length, invalid UTF-8 — things fetch refuses to send) and reads the
// answer, or resets the connection at a chosen point, as a hostile client would.
import net from 'node:net';

export interface RawAnswer {
  /** 0 when the server closed or reset without an answer. */
  status: number;
  headers: string;
  body: Buffer;
  /** Bytes of the whole answer. */
  bytes: number;
  /** Nothing complete came back within the time allowed. */
  timedOut?: boolean;
}

/** Where a hostile client drops the connection: never, part-way through its request, or after the answer started. */
export type ResetPoint =
  | { at: 'never' }
  | { at: 'mid-request'; fraction: number }
  | { at: 'after-request' }
  | { at: 'after-answer-start' };

export interface RawRequest {
  method: string;
  path: string;
  /** Name/value pairs written in order; values are written verbatim. */
  headers: Array<[string, string]>;
  body?: Buffer;
  /** Add Content-Length from the body unless a header of that name is already there. */
  autoLength?: boolean;
}

export function encodeRequest(r: RawRequest, host: string): Buffer {
  const headers = [...r.headers];
  const has = (n: string) => headers.some(([k]) => k.toLowerCase() === n);
  if (!has('host')) headers.unshift(['Host', host]);
  if (r.autoLength !== false && r.body && !has('content-length') && !has('transfer-encoding')) {
    headers.push(['Content-Length', String(r.body.length)]);
  }
  if (!has('connection')) headers.push(['Connection', 'close']);
  const head = `${r.method} ${r.path} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), r.body ?? Buffer.alloc(0)]);
}

function parseAnswer(buf: Buffer): RawAnswer {
  const end = buf.indexOf('\r\n\r\n');
  const head = (end < 0 ? buf : buf.subarray(0, end)).toString('latin1');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  return {
    status: m ? Number(m[1]) : 0,
    headers: head,
    body: end < 0 ? Buffer.alloc(0) : buf.subarray(end + 4),
    bytes: buf.length,
  };
}

/** Sends `bytes` to port, honours `reset`, and resolves with what came back (never rejects). */
export interface ExchangeOptions {
  reset?: ResetPoint;
  /** Half-close after writing (a client whose Content-Length promised more than it sent). */
  halfClose?: boolean;
  /** Stop reading once the answer's head is in (an upgraded connection stays open otherwise). */
  headOnly?: boolean;
  timeoutMs?: number;
}

export function exchange(port: number, bytes: Buffer, o: ExchangeOptions = {}): Promise<RawAnswer> {
  const reset = o.reset ?? { at: 'never' };
  const timeoutMs = o.timeoutMs ?? 10_000;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let done = false;
    let timedOut = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parseAnswer(Buffer.concat(chunks)), timedOut });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      finish();
    }, timeoutMs);
    socket.on('error', finish);
    socket.on('close', finish);
    socket.on('end', finish);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (o.headOnly && Buffer.concat(chunks).includes('\r\n\r\n')) finish();
      else if (reset.at === 'after-answer-start') {
        socket.resetAndDestroy();
        finish();
      }
    });
    socket.on('connect', () => {
      if (reset.at === 'mid-request') {
        const cut = Math.max(1, Math.floor(bytes.length * reset.fraction));
        socket.write(bytes.subarray(0, cut), () => {
          socket.resetAndDestroy();
          finish();
        });
        return;
      }
      socket.write(bytes, () => {
        if (o.halfClose) socket.end();
        if (reset.at === 'after-request') {
          socket.resetAndDestroy();
          finish();
        }
      });
    });
  });
}
