// Small pieces every kitchen simulator shares: reading a JSON body, answering JSON, listening on a
// free port, closing with open sockets, and a queue of faults to inject into the next calls.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';

export async function readBody(req: http.IncomingMessage, limit = 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new Error('body too large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** Listens on `port` (0 = free port) and resolves with the bound port. */
export function listen(server: http.Server, port = 0, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

/** Closes the server, cutting kept-alive and hanging connections so tests end promptly. */
export function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** Faults to apply to the next calls, in order: each call takes one. */
export class FaultQueue<F extends string> {
  private readonly queue: F[] = [];
  add(fault: F, times = 1): void {
    for (let i = 0; i < times; i++) this.queue.push(fault);
  }
  take(): F | undefined {
    return this.queue.shift();
  }
}

/** Holds a response for `ms` (a timeout seen by the client), unless the connection goes first. */
export function hang(res: http.ServerResponse, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    res.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}
