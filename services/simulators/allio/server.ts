// ALLIO API simulator: a node:http server mimicking ALLIO's list endpoints, bearer auth and
// per-IP sliding-window quota, for integration tests, benchmarks and the local demo.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  ALLIO_MAX_IDS_PER_REQUEST,
  idsForDate,
  makeDealCard,
  makeReservation,
  type AllioDealCard,
  type AllioReservation,
} from './data.js';

/** pino-compatible subset, so callers can pass their app logger as is. */
export interface AllioSimulatorLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface AllioSimulatorOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Expected value after "Bearer ". */
  token: string;
  /** Accepted list requests per IP per window. Default 2, like real ALLIO. */
  ratePerSecond?: number;
  /**
   * Counts every caller's requests under one quota, as ALLIO sees a hub whose replicas all leave
   * through one NAT address though they reach the simulator from several (network namespaces).
   * Default false: a quota per caller address. `byIp` tells the callers apart either way.
   */
  oneEgress?: boolean;
  /** Sliding window length. Default 1000 ms. */
  windowMs?: number;
  /** Ids that "do not exist": never returned. */
  missingIds?: Iterable<number>;
  /** Delay before answering list requests. Default 0. */
  latencyMs?: number;
  logger?: AllioSimulatorLogger;
}

export interface AllioSimulatorIpStats {
  requests: number;
  violations: number;
}

export interface AllioSimulatorStats {
  /** List-endpoint requests seen, whatever their outcome. */
  requests: number;
  /** List requests answered 200. */
  served: number;
  /** List requests rejected with 429. */
  violations: number;
  recordsServed: number;
  /** Ids sent in `{"ids": [...]}` bodies of requests that passed validation (duplicates included). */
  idsRequested: number;
  /** Largest number of accepted requests one IP (or the one egress) had inside one window. */
  maxInWindow: number;
  /** Arrival of the first and of the latest list request (ms since the epoch); absent before one. */
  firstRequestAt?: number;
  lastRequestAt?: number;
  byIp: Record<string, AllioSimulatorIpStats>;
}

export interface AllioSimulator {
  /** e.g. http://127.0.0.1:PORT (no trailing slash). */
  url: string;
  stats(): AllioSimulatorStats;
  /** Clears stats, quota windows and pending failNext; keeps latency and options. */
  reset(): void;
  /** The next n list requests that pass quota and auth answer `status` (with Retry-After if given). */
  failNext(n: number, status: number, retryAfterSeconds?: number): void;
  setLatency(ms: number): void;
  close(): Promise<void>;
}

type ListKind = 'reserve' | 'dealcard';

const MAX_BODY_BYTES = 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function emptyStats(): AllioSimulatorStats {
  return {
    requests: 0,
    served: 0,
    violations: 0,
    recordsServed: 0,
    idsRequested: 0,
    maxInWindow: 0,
    byIp: {},
  };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

type ListQuery = { ids: number[] } | { date: string; ids: number[] };

function parseListBody(raw: string): ListQuery {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    throw new HttpError(400, 'invalid_json', 'request body is not valid JSON');
  }
  if (!isPlainObject(body)) throw new HttpError(400, 'invalid_body', 'body must be a JSON object');
  const hasIds = 'ids' in body;
  const hasDate = 'date' in body;
  if (hasIds === hasDate) {
    throw new HttpError(400, 'invalid_body', 'body must have exactly one of "ids" or "date"');
  }
  if (hasDate) {
    const ids = typeof body.date === 'string' ? idsForDate(body.date) : undefined;
    if (!ids) throw new HttpError(400, 'invalid_date', '"date" must be a valid YYYY-MM-DD date');
    return { date: body.date as string, ids };
  }
  const ids = body.ids;
  if (!Array.isArray(ids) || ids.length === 0) {
    throw new HttpError(400, 'invalid_ids', '"ids" must be a non-empty array');
  }
  if (ids.length > ALLIO_MAX_IDS_PER_REQUEST) {
    throw new HttpError(
      400,
      'too_many_ids',
      `at most ${ALLIO_MAX_IDS_PER_REQUEST} ids per request`,
    );
  }
  for (const id of ids) {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) {
      throw new HttpError(400, 'invalid_ids', '"ids" must contain positive integers');
    }
  }
  return { ids: ids as number[] };
}

function readBody(req: http.IncomingMessage): Promise<{ text: string; tooLarge: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Keep draining past the limit (without buffering) so the connection stays usable.
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () =>
      resolve({ text: tooLarge ? '' : Buffer.concat(chunks).toString('utf8'), tooLarge }),
    );
    req.on('error', reject);
  });
}

export async function startAllioSimulator(opts: AllioSimulatorOptions): Promise<AllioSimulator> {
  const host = opts.host ?? '127.0.0.1';
  const rate = opts.ratePerSecond ?? 2;
  const windowMs = opts.windowMs ?? 1000;
  const missing = new Set(opts.missingIds ?? []);
  const logger = opts.logger;
  let latencyMs = opts.latencyMs ?? 0;

  let stats = emptyStats();
  // Arrival times (performance.now) of accepted requests per IP, oldest first.
  let windows = new Map<string, number[]>();
  let failure: { remaining: number; status: number; retryAfterSeconds?: number } | undefined;
  let closing = false;
  // Pending latency timers, released on close so no timer outlives the server.
  const sleepers = new Map<NodeJS.Timeout, () => void>();

  function sleep(ms: number): Promise<void> {
    if (ms <= 0 || closing) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        sleepers.delete(timer);
        resolve();
      }, ms);
      sleepers.set(timer, resolve);
    });
  }

  /** Sliding window: a request counts against every later request arriving less than windowMs after it. */
  function admit(ip: string, now: number): boolean {
    let w = windows.get(ip);
    if (!w) {
      w = [];
      windows.set(ip, w);
    }
    const cutoff = now - windowMs;
    while (w.length > 0 && (w[0] ?? Infinity) <= cutoff) w.shift();
    if (w.length >= rate) return false;
    w.push(now);
    if (w.length > stats.maxInWindow) stats.maxInWindow = w.length;
    return true;
  }

  function send(
    res: http.ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void {
    if (res.headersSent || res.destroyed || res.writableEnded) return;
    if (closing) {
      res.destroy();
      return;
    }
    const payload = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(payload),
      ...headers,
    });
    res.end(payload);
  }

  function sendError(
    res: http.ServerResponse,
    err: HttpError,
    headers?: Record<string, string>,
  ): void {
    send(res, err.status, { error: { code: err.code, message: err.message } }, headers);
  }

  async function handleList(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    kind: ListKind,
  ): Promise<void> {
    const ip = req.socket.remoteAddress ?? 'unknown';
    const ipStats = (stats.byIp[ip] ??= { requests: 0, violations: 0 });
    stats.requests++;
    const arrival = Date.now();
    stats.firstRequestAt ??= arrival;
    stats.lastRequestAt = arrival;
    ipStats.requests++;
    // Quota is decided at arrival, before auth or body parsing, exactly like ALLIO counts it.
    const admitted = admit(opts.oneEgress ? 'egress' : ip, performance.now());
    const { text, tooLarge } = await readBody(req);
    await sleep(latencyMs);

    if (!admitted) {
      stats.violations++;
      ipStats.violations++;
      logger?.warn({ ip, kind }, 'allio-sim: quota exceeded');
      sendError(
        res,
        new HttpError(429, 'rate_limited', `more than ${rate} requests per ${windowMs} ms`),
        {
          'retry-after': '1',
        },
      );
      return;
    }
    if (req.method !== 'POST') {
      sendError(res, new HttpError(405, 'method_not_allowed', 'use POST'), { allow: 'POST' });
      return;
    }
    if (req.headers.authorization !== `Bearer ${opts.token}`) {
      sendError(res, new HttpError(401, 'unauthorized', 'missing or invalid bearer token'));
      return;
    }
    if (failure && failure.remaining > 0) {
      const { status, retryAfterSeconds } = failure;
      failure.remaining--;
      if (failure.remaining === 0) failure = undefined;
      const headers: Record<string, string> =
        retryAfterSeconds === undefined ? {} : { 'retry-after': String(retryAfterSeconds) };
      sendError(
        res,
        new HttpError(status, 'simulated_failure', `simulated failure ${status}`),
        headers,
      );
      return;
    }
    if (tooLarge) {
      sendError(
        res,
        new HttpError(413, 'payload_too_large', `body exceeds ${MAX_BODY_BYTES} bytes`),
      );
      return;
    }
    const query = parseListBody(text);
    if (!('date' in query)) stats.idsRequested += query.ids.length;
    const make: (id: number) => AllioReservation | AllioDealCard =
      kind === 'reserve' ? makeReservation : makeDealCard;
    const items = [...new Set(query.ids)].filter((id) => !missing.has(id)).map(make);
    stats.served++;
    stats.recordsServed += items.length;
    send(res, 200, { items });
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // A malformed request line can still reach here; a base URL makes parsing total.
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://allio-sim.local').pathname;
    } catch {
      path = '';
    }
    if (path === '/_sim/stats' && req.method === 'GET') {
      req.resume();
      send(res, 200, structuredClone(stats));
      return;
    }
    if (path === '/reserve/list' || path === '/dealcard/list') {
      await handleList(req, res, path === '/reserve/list' ? 'reserve' : 'dealcard');
      return;
    }
    req.resume();
    sendError(res, new HttpError(404, 'not_found', `no route for ${req.method ?? '?'} ${path}`));
  }

  const server = http.createServer((req, res) => {
    res.on('error', (err) => logger?.warn({ err: err.message }, 'allio-sim: response error'));
    handle(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) {
        sendError(res, err);
        return;
      }
      logger?.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'allio-sim: request failed',
      );
      if (!res.headersSent) sendError(res, new HttpError(500, 'internal', 'simulator error'));
      else res.destroy();
    });
  });
  server.on('clientError', (_err, socket) => {
    // Unparseable HTTP: answer like Node's default would, but never let it throw.
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${urlHost}:${address.port}`;
  logger?.info({ url, rate, windowMs }, 'allio-sim: listening');

  let closed: Promise<void> | undefined;

  return {
    url,
    stats: () => structuredClone(stats),
    reset() {
      stats = emptyStats();
      windows = new Map();
      failure = undefined;
    },
    failNext(n, status, retryAfterSeconds) {
      failure = n > 0 ? { remaining: n, status, retryAfterSeconds } : undefined;
    },
    setLatency(ms) {
      latencyMs = Math.max(0, ms);
    },
    close() {
      closed ??= new Promise<void>((resolve, reject) => {
        closing = true;
        for (const [timer, wake] of sleepers) {
          clearTimeout(timer);
          wake();
        }
        sleepers.clear();
        server.close((err) => (err ? reject(err) : resolve()));
        // close() only stops accepting; keep-alive sockets would otherwise hold the process open.
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
