// Smart-home benchmark: (1) the open-door round trip (REST → RabbitMQ → partner → bridge → Redis
// pub/sub → tenant WebSocket) at a steady open-loop rate, its p99 compared with a bare amqplib
// request/reply at the same rate on the same broker and vhost; (2) a sweep of rising rates, the
// highest each of the two sustains with p99 under 50 ms; (3) ~19,000 authenticated tenant
// WebSockets held by one api process (the most one process may open here), its memory per socket
// projected to 50,000 against a 512 MB pod, and one event to every tenant timed at the clients.
// The hub, the partner and the bare replier run in child processes (smart-home-server.ts), the
// WebSocket clients in others (ws-clients.ts); this process generates the load.
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { promisify } from 'node:util';
import amqplib from 'amqplib';
import type { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { EVENTS_PATH } from '../services/api/events-ws.js';
import { createDb, quoteIdent, type Db } from '../services/core/db.js';
import { migrate } from '../services/core/migrate.js';
import { createRedis } from '../services/core/redis.js';
import { API_VERSION } from '../services/core/resource.js';
import { buildOrderStatus, type TenantEvent } from '../services/contracts/tenant-events.js';
import { TenantEventPublisher } from '../services/core/tenant-events.js';
import { upsertPartner } from '../services/domains/smart-home/partners.js';
import {
  defaultCommandQueue,
  smartHomePartnerResource,
} from '../services/contracts/smart-home-partner.js';
import { startTenantIdp, type TenantIdp } from '../services/simulators/tenant-idp/server.js';
import { DATABASE_URL, REDIS_URL, envInt, fmt, uniqueName, withDeadline } from './support.js';
import {
  nowMs,
  Samples,
  type ChildConfig,
  type ChildRole,
  type ChildStats,
  type FromChild,
  type Summary,
  type ToChild,
} from './smart-home-stats.js';
import type { FromWsClients, ToWsClients } from './ws-clients.js';

const run = promisify(execFile);
const AMQP_URL =
  process.env.BENCH_AMQP_URL ?? process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const PARTNER = 'bench-acme';
const PERSONAL = { fullName: 'Anna Petrova', phone: '+7 916 555-01-02', apartment: '117' };
const P99_GOAL = 2.0;
/** Measured time is split in blocks alternating between ours and the bare peer. */
const BLOCK_SECONDS = 5;
const MB = 1024 * 1024;

export interface RoundTripResult {
  latency: Summary;
  /** Commands sent in the measured window per second of that window. */
  sentPerSecond: number;
  /** Results received (of measured commands) per second of the window. */
  donePerSecond: number;
  errors: Record<string, number>;
}

export interface SmartHomeResult {
  rate: number;
  seconds: number;
  roundTrip?: {
    ours: RoundTripResult;
    bare: RoundTripResult;
    /** ours p99 / bare p99; the goal is <= 2.0. */
    ratio: number;
  };
  sweep?: SweepResult;
  ws?: {
    wanted: number;
    ready: number;
    refused: number;
    rssBytes: number;
    baselineRssBytes: number;
    perSocketBytes: number;
    heapPerSocketBytes: number;
    /** Baseline + 50,000 × the per-socket RSS; the goal is the pod's 512 MB. */
    projectedBytes: number;
    /** Delivery of one event to every tenant, worst of the rounds. */
    fanout: Summary;
    pushed: boolean;
  };
}

/** A forked smart-home-server.ts; requests are answered in order, one of each kind at a time. */
class Child {
  private readonly waiters = new Map<string, (m: FromChild) => void>();
  private exited: Promise<number | null>;
  readonly started: Promise<string | undefined>;

  private constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    this.started = new Promise((resolve, reject) => {
      proc.once('exit', (code) =>
        reject(new Error(`${name} exited with ${code} before it was ready`)),
      );
      this.waiters.set('ready', (m) => resolve(m.type === 'ready' ? m.url : undefined));
      this.waiters.set('error', (m) =>
        reject(new Error(`${name} failed to start: ${m.type === 'error' ? m.message : ''}`)),
      );
    });
    proc.on('message', (m: FromChild) => {
      const w = this.waiters.get(m.type);
      this.waiters.delete(m.type);
      w?.(m);
    });
  }

  static start(name: string, cfg: ChildConfig, execArgv: string[] = []): Child {
    const script = new URL('./smart-home-server.js', import.meta.url);
    const proc = fork(script, [], {
      env: { ...process.env, BENCH_SH_CHILD: JSON.stringify(cfg) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // BENCH_SH_CPU_PROF=<dir> writes a V8 CPU profile of the hub on exit, to see where its CPU goes.
      execArgv:
        process.env.BENCH_SH_CPU_PROF && cfg.roles.includes('api') && cfg.roles.includes('bridge')
          ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_SH_CPU_PROF}`, ...execArgv]
          : execArgv,
    });
    return new Child(name, proc);
  }

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  private ask<T extends FromChild['type']>(
    msg: ToChild,
    reply: T,
  ): Promise<Extract<FromChild, { type: T }>> {
    return withDeadline(
      new Promise((resolve) => {
        this.waiters.set(reply, (m) => resolve(m as Extract<FromChild, { type: T }>));
        this.proc.send(msg);
      }),
      30_000,
      `${this.name} to answer ${msg.cmd}`,
    );
  }

  async stats(gc = false): Promise<ChildStats> {
    return (await this.ask({ cmd: 'stats', gc }, 'stats')).stats;
  }

  /** Restarts the CPU and event-loop figures, and with `stages` the stage timings too. */
  async reset(stages: boolean): Promise<void> {
    await this.ask({ cmd: 'reset', stages }, 'reset');
  }

  /** Asks the child to close its connections; kills it if it has not exited in 15 s. */
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || !this.proc.connected) {
      if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
      await this.exited;
      return;
    }
    this.proc.send({ cmd: 'stop' } satisfies ToChild);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** VmRSS and VmHWM of a process, in bytes (the kernel's view, including native buffers). */
function procRss(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface HttpAnswer {
  status: number;
  text: string;
}

/** One HTTP request over the keep-alive agent; fetch would add its own per-request overhead to ours. */
function call(
  agent: Agent,
  base: URL,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const req = request(
      {
        agent,
        host: base.hostname,
        port: base.port,
        method,
        path,
        headers: {
          authorization: `Bearer ${token}`,
          'content-length': String(Buffer.byteLength(payload)),
          ...(payload ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * Calls `fire` at `rate` per second on a fixed schedule, whatever the completions (open loop), for
 * `warmupMs + measureMs`; `fire` gets the scheduled time, from which latency is counted, so that
 * a stalled load generator shows up as latency instead of silently sending less.
 */
async function openLoop(
  rate: number,
  warmupMs: number,
  measureMs: number,
  fire: (scheduledAt: number, measured: boolean) => void,
): Promise<{ lag: number[]; windowMs: number }> {
  const interval = 1000 / rate;
  const warm = Math.round(warmupMs / interval);
  const total = warm + Math.round(measureMs / interval);
  const lag: number[] = [];
  const start = nowMs() + 5;
  let i = 0;
  while (i < total) {
    const now = nowMs();
    for (; i < total; i++) {
      const at = start + i * interval;
      if (at > now) break;
      if (i >= warm) lag.push(now - at);
      fire(at, i >= warm);
    }
    if (i < total) await sleep(Math.max(0, start + i * interval - nowMs()));
  }
  return { lag, windowMs: (total - warm) * interval };
}

function bump(errors: Record<string, number>, what: string): void {
  errors[what] = (errors[what] ?? 0) + 1;
}

interface Stack {
  schema: string;
  keyPrefix: string;
  vhost: string;
  amqpUrl: string;
  admin: Db;
  idp: TenantIdp;
  base: Omit<ChildConfig, 'roles' | 'profile'>;
}

async function setUp(): Promise<Stack> {
  const schema = uniqueName('bench_sh');
  const keyPrefix = `bench:${schema}:`;
  const admin = createDb(
    { DATABASE_URL, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: 4 },
    { applicationName: 'bench-sh' },
  );
  await migrate(admin, schema);
  await run('rabbitmqctl', ['add_vhost', schema]);
  await run('rabbitmqctl', [
    'set_permissions',
    '-p',
    schema,
    new URL(AMQP_URL).username || 'guest',
    '.*',
    '.*',
    '.*',
  ]);
  const url = new URL(AMQP_URL);
  url.pathname = `/${encodeURIComponent(schema)}`;
  const idp = await startTenantIdp();
  await upsertPartner(
    admin,
    smartHomePartnerResource.parse({
      apiVersion: API_VERSION,
      kind: 'SmartHomePartner',
      metadata: { name: PARTNER },
      spec: { services: ['intercom', 'barrier'] },
    }),
  );
  return {
    schema,
    keyPrefix,
    vhost: schema,
    amqpUrl: url.toString(),
    admin,
    idp,
    base: {
      databaseUrl: DATABASE_URL,
      schema,
      redisUrl: REDIS_URL,
      keyPrefix,
      amqpUrl: url.toString(),
      env: {
        TENANT_JWT_ISSUER: idp.issuer,
        TENANT_JWKS_URL: idp.jwksUrl,
        TENANT_JWT_AUDIENCE: idp.audience,
        DATA_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
      },
      partner: PARTNER,
      commandQueue: defaultCommandQueue(PARTNER),
      echoQueue: 'bench.echo.requests',
    },
  };
}

async function tearDown(s: Stack): Promise<void> {
  await s.idp.close();
  await s.admin
    .raw(`drop schema if exists ${quoteIdent(s.schema)} cascade`)
    .catch((e: unknown) => console.error(`could not drop schema ${s.schema}:`, e));
  await s.admin.destroy();
  await run('rabbitmqctl', ['delete_vhost', s.vhost]).catch((e: unknown) =>
    console.error(`could not delete vhost ${s.vhost}:`, e),
  );
  const redis = createRedis({ REDIS_URL, REDIS_KEY_PREFIX: s.keyPrefix });
  try {
    await ready(redis);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${s.keyPrefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } catch (e) {
    console.error('could not delete Redis keys:', e);
  } finally {
    redis.disconnect();
  }
}

async function ready(redis: Redis): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    redis.once('ready', resolve);
    redis.once('error', reject);
  });
}

/** Runs `task` over `items` with at most `limit` in flight. */
async function pool<T>(
  items: readonly T[],
  limit: number,
  task: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await task(items[i] as T, i);
      }
    }),
  );
}

interface TenantConn {
  id: string;
  token: string;
  ws: WebSocket;
}

/** Opens a tenant WebSocket and resolves on the server's `ready`; `onEvent` then gets every event. */
function openSocket(
  base: URL,
  token: string,
  onEvent?: (e: Record<string, unknown>, at: number) => void,
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(
      `ws://${base.host}/v1/events?access_token=${encodeURIComponent(token)}`,
    );
    let isReady = false;
    ws.on('message', (data: Buffer) => {
      const at = nowMs();
      const e = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
      if (!isReady && e.type === 'ready') {
        isReady = true;
        resolve(ws);
      } else onEvent?.(e, at);
    });
    ws.once('unexpected-response', (req, res) => {
      reject(new Error(`websocket refused with ${res.statusCode}`));
      req.destroy();
    });
    // A socket error after `ready` (the api going away at the end) must not crash the load generator.
    ws.on('error', (err) => reject(err));
    ws.once('close', () => {
      if (!isReady) reject(new Error('websocket closed before ready'));
    });
  });
}

function latencyLine(label: string, l: Summary): string {
  return `  ${label.padEnd(20)} p50 ${fmt(l.p50, 2).padStart(6)} ms  p90 ${fmt(l.p90, 2).padStart(6)} ms  p99 ${fmt(l.p99, 2).padStart(6)} ms  max ${fmt(l.max, 1).padStart(6)} ms  (n ${fmt(l.n)})`;
}

function printStages(name: string, s: ChildStats): void {
  const entries = Object.entries(s.stages).sort((a, b) => a[0].localeCompare(b[0]));
  if (entries.length === 0) return;
  console.log(`  stages in ${name}:`);
  for (const [k, v] of entries) {
    console.log(
      `    ${k.padEnd(62)} p50 ${fmt(v.p50, 2).padStart(6)}  p99 ${fmt(v.p99, 2).padStart(6)}  max ${fmt(v.max, 1).padStart(6)} ms  n ${fmt(v.n)}`,
    );
  }
}

async function connectTenants(
  s: Stack,
  url: URL,
  agent: Agent,
  count: number,
): Promise<{ id: string; token: string }[]> {
  const tenants = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const id = `bench-tenant-${i}`;
      return { id, token: await s.idp.issue(id) };
    }),
  );
  await pool(tenants, 20, async (t) => {
    const res = await call(
      agent,
      url,
      'POST',
      '/v1/smart-home/subscriptions/intercom/connect',
      t.token,
      { personalData: PERSONAL, biometricsConsent: true },
    );
    if (res.status !== 202) {
      throw new Error(`connect of ${t.id} answered ${res.status}: ${res.text}`);
    }
  });
  // The bridge sends each connect to the partner simulator, whose reply marks the subscription connected.
  await withDeadline(
    (async () => {
      for (;;) {
        const row = await s
          .admin('smart_home_subscriptions')
          .where({ state: 'connected' })
          .count<{ n: string }[]>('* as n')
          .first();
        if (Number(row?.n ?? 0) >= count) return;
        await sleep(200);
      }
    })(),
    120_000,
    `${count} intercom subscriptions to be connected`,
  );
  return tenants;
}

/** One side of the round-trip comparison; blocks of both sides alternate so that both meet the same machine. */
interface Side {
  /** Sends at the rate for `ms`, then waits for the outstanding answers; only measured blocks count. */
  block(ms: number, measured: boolean): Promise<void>;
  /** Starts a new tally at another rate (the rate sweep). */
  restart(rate: number): void;
  result(): RoundTripResult;
  report(): Promise<void>;
  close(): Promise<void>;
}

/** Accumulates the measured blocks of one side. */
class Tally {
  readonly latency = new Samples();
  readonly lag = new Samples();
  readonly errors: Record<string, number> = {};
  sent = 0;
  done = 0;
  windowMs = 0;

  result(): RoundTripResult {
    return {
      latency: this.latency.summary(),
      sentPerSecond: (this.sent * 1000) / this.windowMs,
      donePerSecond: (this.done * 1000) / this.windowMs,
      errors: this.errors,
    };
  }
}

/** Per-block CPU and event-loop figures of a child, averaged (CPU) or worst (delay) over the measured blocks. */
class ChildLoad {
  private cpu = 0;
  private blocks = 0;
  private loopP99 = 0;
  private loopMax = 0;
  last: ChildStats | undefined;

  constructor(
    readonly name: string,
    readonly child: Child,
  ) {}

  async begin(): Promise<void> {
    await this.child.reset(false);
  }

  async end(): Promise<void> {
    const s = await this.child.stats();
    this.last = s;
    this.cpu += s.cpuPercent;
    this.blocks++;
    this.loopP99 = Math.max(this.loopP99, s.loopDelay.p99);
    this.loopMax = Math.max(this.loopMax, s.loopDelay.max);
  }

  line(): string {
    return (
      `  ${this.name.padEnd(20)} CPU ${fmt(this.cpu / Math.max(1, this.blocks)).padStart(3)} % of a core, event-loop delay p99 ` +
      `${fmt(this.loopP99, 1)} ms (worst block; max ${fmt(this.loopMax, 1)}), RSS ${fmt((this.last?.rssBytes ?? NaN) / MB)} MB`
    );
  }
}

async function drain(isEmpty: () => boolean): Promise<void> {
  // An open command times out (and says so) after its 10 s TTL, so 12 s bounds the wait.
  const until = nowMs() + 12_000;
  while (!isEmpty() && nowMs() < until) await sleep(20);
}

async function oursSide(
  s: Stack,
  hub: Child,
  partner: Child,
  url: URL,
  firstRate: number,
  tenantCount: number,
  profile: boolean,
): Promise<Side> {
  let rate = firstRate;
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  let t = new Tally();
  let toAnswer = new Samples();
  let answerToResult = new Samples();
  const loads = [
    new ChildLoad('hub (api + bridge)', hub),
    new ChildLoad('partner simulator', partner),
  ];
  // A result can arrive on the socket before the REST answer carrying its id is read.
  const early = new Map<string, { at: number; status: unknown }>();
  const pending = new Map<string, { scheduledAt: number; answeredAt: number; measured: boolean }>();
  const inflight = new Set<Promise<void>>();
  const complete = (id: string, at: number, status: unknown) => {
    const p = pending.get(id);
    if (!p) {
      early.set(id, { at, status });
      return;
    }
    pending.delete(id);
    if (!p.measured) return;
    if (status !== 'opened') bump(t.errors, `result ${String(status)}`);
    else {
      t.latency.add(at - p.scheduledAt);
      answerToResult.add(at - p.answeredAt);
    }
    t.done++;
  };
  const conns: TenantConn[] = [];
  const tenants = await connectTenants(s, url, agent, tenantCount);
  await pool(tenants, 50, async (tn) => {
    const ws = await openSocket(url, tn.token, (e, at) => {
      if (e.type === 'command.result' && typeof e.commandId === 'string') {
        complete(e.commandId, at, e.status);
      }
    });
    conns.push({ ...tn, ws });
  });
  console.log(
    `  ${fmt(tenantCount)} tenants connected to intercom, one WebSocket each, one keep-alive HTTP agent`,
  );
  let n = 0;
  const fire = (scheduledAt: number, measured: boolean) => {
    const c = conns[n++ % conns.length] as TenantConn;
    if (measured) t.sent++;
    const p = call(agent, url, 'POST', '/v1/smart-home/subscriptions/intercom/open', c.token).then(
      (res) => {
        const at = nowMs();
        if (res.status !== 202) {
          if (measured) bump(t.errors, `http ${res.status}`);
          return;
        }
        const id = (JSON.parse(res.text) as { commandId: string }).commandId;
        if (measured) toAnswer.add(at - scheduledAt);
        pending.set(id, { scheduledAt, answeredAt: at, measured });
        const e = early.get(id);
        if (e) {
          early.delete(id);
          complete(id, e.at, e.status);
        }
      },
      (err: unknown) => {
        if (measured) {
          bump(t.errors, `http error ${err instanceof Error ? err.message : String(err)}`);
        }
      },
    );
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };
  let profiled = false;
  const result = (): RoundTripResult => {
    const r = t.result();
    const missing = [...pending.values()].filter((p) => p.measured).length;
    if (missing > 0) r.errors['no result'] = missing;
    return r;
  };
  return {
    async block(ms, measured) {
      if (measured) {
        await Promise.all(loads.map((l) => l.begin()));
        // Stage timings start with the first measured block and cover all of them.
        if (!profiled) await Promise.all([hub.reset(true), partner.reset(true)]);
        profiled = true;
      }
      const { lag, windowMs } = await openLoop(rate, measured ? 0 : ms, measured ? ms : 0, fire);
      await Promise.all(inflight);
      await drain(() => pending.size === 0);
      if (!measured) return;
      for (const v of lag) t.lag.add(v);
      t.windowMs += windowMs;
      await Promise.all(loads.map((l) => l.end()));
    },
    restart(newRate) {
      rate = newRate;
      pending.clear();
      early.clear();
      t = new Tally();
      toAnswer = new Samples();
      answerToResult = new Samples();
    },
    result,
    async report() {
      const r = result();
      const lag = t.lag.summary();
      console.log(latencyLine('REST → WS result', r.latency));
      console.log(latencyLine('  REST → 202', toAnswer.summary()));
      console.log(latencyLine('  202 → WS result', answerToResult.summary()));
      console.log(
        `  rate                 sent ${fmt(r.sentPerSecond, 1)}/s, results ${fmt(r.donePerSecond, 1)}/s (schedule ${rate}/s; send lag p99 ${fmt(lag.p99, 2)} ms, max ${fmt(lag.max, 1)} ms)`,
      );
      console.log(
        `  errors               ${Object.keys(r.errors).length === 0 ? '0' : JSON.stringify(r.errors)}`,
      );
      for (const l of loads) console.log(l.line());
      if (profile) {
        printStages('the hub', await hub.stats());
        printStages('the partner', await partner.stats());
      }
    },
    async close() {
      for (const c of conns) c.ws.terminate();
      agent.destroy();
    },
  };
}

async function bareSide(s: Stack, echo: Child, firstRate: number): Promise<Side> {
  let rate = firstRate;
  // Nagle's algorithm off, as a latency-minded client would have it (amqplib leaves it on by default).
  const conn = await amqplib.connect(s.amqpUrl, {
    noDelay: process.env.BENCH_SH_BARE_NODELAY !== '0',
  });
  let t = new Tally();
  const load = new ChildLoad('bare replier', echo);
  const pending = new Map<string, { scheduledAt: number; measured: boolean }>();
  const ch = await conn.createConfirmChannel();
  const replyQueue = 'bench.echo.replies';
  // The same queue type and durability as the partner's command queue and the hub's reply queue.
  const quorum = { durable: true, arguments: { 'x-queue-type': 'quorum' } };
  await ch.assertQueue(s.base.echoQueue, quorum);
  await ch.assertQueue(replyQueue, quorum);
  // Manual acks with the bridge reply consumer's default prefetch.
  await ch.prefetch(50);
  await ch.consume(replyQueue, (msg) => {
    if (!msg) return;
    const at = nowMs();
    const id = String(msg.properties.correlationId);
    const p = pending.get(id);
    pending.delete(id);
    ch.ack(msg);
    if (!p?.measured) return;
    t.latency.add(at - p.scheduledAt);
    t.done++;
  });
  let n = 0;
  // A body the size of an open command, so that both sides move the same bytes.
  const body = (id: string) =>
    Buffer.from(
      JSON.stringify({
        messageId: randomUUID(),
        type: 'device.open',
        correlationId: id,
        service: 'intercom',
        tenantRef: randomUUID(),
        createdAt: new Date().toISOString(),
        attempt: 1,
        payload: { expiresAt: new Date(Date.now() + 10_000).toISOString() },
      }),
    );
  const result = (): RoundTripResult => {
    const r = t.result();
    const missing = [...pending.values()].filter((p) => p.measured).length;
    if (missing > 0) r.errors['no reply'] = missing;
    return r;
  };
  const fire = (scheduledAt: number, measured: boolean) => {
    const id = String(n++);
    if (measured) t.sent++;
    pending.set(id, { scheduledAt, measured });
    ch.publish(
      '',
      s.base.echoQueue,
      body(id),
      { persistent: true, correlationId: id, replyTo: replyQueue, contentType: 'application/json' },
      (err: unknown) => {
        if (err && measured) bump(t.errors, 'publish nacked');
      },
    );
  };
  return {
    async block(ms, measured) {
      if (measured) await load.begin();
      const { lag, windowMs } = await openLoop(rate, measured ? 0 : ms, measured ? ms : 0, fire);
      await drain(() => pending.size === 0);
      if (!measured) return;
      for (const v of lag) t.lag.add(v);
      t.windowMs += windowMs;
      await load.end();
    },
    restart(newRate) {
      rate = newRate;
      pending.clear();
      t = new Tally();
    },
    result,
    async report() {
      const r = result();
      console.log(latencyLine('publish → reply', r.latency));
      console.log(
        `  rate                 sent ${fmt(r.sentPerSecond, 1)}/s, replies ${fmt(r.donePerSecond, 1)}/s (send lag p99 ${fmt(t.lag.summary().p99, 2)} ms)`,
      );
      console.log(
        `  errors               ${Object.keys(r.errors).length === 0 ? '0' : JSON.stringify(r.errors)}`,
      );
      console.log(load.line());
    },
    async close() {
      await ch.close().catch(() => undefined);
      await conn.close().catch(() => undefined);
    },
  };
}

/** A forked ws-clients.ts holding a share of the tenant sockets. */
class ClientProcess {
  private readonly waiters = new Map<string, (m: FromWsClients) => void>();
  private readonly exited: Promise<void>;
  readonly proc: ChildProcess;

  constructor(readonly name: string) {
    this.proc = fork(new URL('./ws-clients.js', import.meta.url), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.exited = new Promise((resolve) => this.proc.once('exit', () => resolve()));
    this.proc.on('message', (m: FromWsClients) => {
      const w = this.waiters.get(m.type) ?? this.waiters.get('error');
      this.waiters.delete(m.type);
      w?.(m);
    });
  }

  ask<T extends FromWsClients['type']>(
    msg: ToWsClients,
    reply: T,
    ms = 30_000,
  ): Promise<Extract<FromWsClients, { type: T }>> {
    return withDeadline(
      new Promise((resolve, reject) => {
        this.waiters.set(reply, (m) =>
          m.type === 'error'
            ? reject(new Error(`${this.name}: ${m.message}`))
            : resolve(m as Extract<FromWsClients, { type: T }>),
        );
        this.proc.send(msg);
      }),
      ms,
      `${this.name} to answer ${msg.cmd}`,
    );
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.connected) {
      this.proc.send({ cmd: 'stop' } satisfies ToWsClients);
    }
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Client sockets per load process: under its open-file limit, with room for its own descriptors. */
const SOCKETS_PER_CLIENT_PROCESS = 9_500;
/** The api pod's memory limit that the per-socket figure is projected against. */
const POD_LIMIT_BYTES = 512 * MB;
const PROJECTED_SOCKETS = 50_000;
const FANOUT_P99_GOAL_MS = 1_000;
const FANOUT_ROUNDS = 3;

async function webSockets(
  s: Stack,
  wanted: number,
  tenantCount: number,
): Promise<SmartHomeResult['ws']> {
  // --expose-gc: memory is read after a full collection, so that garbage is not counted as sockets.
  // BENCH_SH_WS_CPU_PROF=<dir> writes a V8 CPU profile of this api on exit, to see where the fan-out's time goes.
  // BENCH_SH_WS_HEAP_SNAPSHOTS=<dir> writes a heap snapshot before and one after the sockets opened, to see what each socket holds.
  const prof = process.env.BENCH_SH_WS_CPU_PROF;
  const snapshots = process.env.BENCH_SH_WS_HEAP_SNAPSHOTS;
  // HTTP_MAX_CONNECTIONS as a pod sized for 50,000 sockets sets it (the default, 10,000, refuses the rest).
  const api = Child.start(
    'ws api',
    { ...s.base, roles: ['api'], profile: false, maxConnections: PROJECTED_SOCKETS },
    [
      '--expose-gc',
      ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []),
      ...(snapshots ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshots}`] : []),
    ],
  );
  const snapshot = async () => {
    if (!snapshots) return;
    const before = new Set(readdirSync(snapshots));
    api.proc.kill('SIGUSR2');
    // Written synchronously by the api; done once the file exists and its size stops changing.
    await waitUntil(async () => readdirSync(snapshots).some((f) => !before.has(f)), 120_000);
    await sleep(5_000);
  };
  const clients = Array.from(
    { length: Math.ceil(wanted / SOCKETS_PER_CLIENT_PROCESS) },
    (_, i) => new ClientProcess(`ws clients ${i + 1}`),
  );
  const redis = createRedis({ REDIS_URL, REDIS_KEY_PREFIX: s.keyPrefix });
  try {
    const url = new URL((await api.started) as string);
    await ready(redis);
    await sleep(1_000);
    const before = await api.stats(true);
    const baseline = procRss(api.pid).rss;
    await snapshot();
    const tenants = Array.from({ length: tenantCount }, (_, i) => `bench-ws-tenant-${i}`);
    const tokens = await Promise.all(tenants.map((t) => s.idp.issue(t)));
    // Socket i belongs to tenant i % tenantCount; the client processes take consecutive slices.
    const share = Math.ceil(wanted / clients.length);
    const opening = nowMs();
    const opened = await Promise.all(
      clients.map((c, k) => {
        const slice = Array.from(
          { length: Math.max(0, Math.min(share, wanted - k * share)) },
          (_, j) => tokens[(k * share + j) % tenantCount] as string,
        );
        return c.ask(
          { cmd: 'open', url: `ws://${url.host}${EVENTS_PATH}`, tokens: slice, concurrency: 100 },
          'opened',
          600_000,
        );
      }),
    );
    const openMs = nowMs() - opening;
    const readyCount = opened.reduce((n, o) => n + o.ready, 0);
    const refused = opened.reduce((n, o) => n + o.refused, 0);
    const firstRefusal = opened.find((o) => o.firstRefusal)?.firstRefusal ?? '';
    await sleep(2_000);
    const stats = await api.stats(true);
    const { rss, peak } = procRss(api.pid);
    await snapshot();
    const perSocket = (rss - baseline) / Math.max(1, readyCount);
    const heapPerSocket = (stats.heapUsedBytes - before.heapUsedBytes) / Math.max(1, readyCount);
    const projected = baseline + PROJECTED_SOCKETS * perSocket;
    console.log(
      `  sockets ready        ${fmt(readyCount)} of ${fmt(wanted)} (${fmt(refused)} refused${firstRefusal ? `, first: ${firstRefusal}` : ''}) over ${fmt(tenantCount)} tenants, from ${clients.length} client processes, opened in ${fmt(openMs / 1000, 1)} s; the api counts ${fmt(stats.webSockets)}`,
    );
    console.log(
      `  api memory           RSS ${fmt(rss / MB, 1)} MB (peak ${fmt(peak / MB, 1)} MB, ${fmt(baseline / MB, 1)} MB before the sockets); after a full GC: heap used ${fmt(stats.heapUsedBytes / MB, 1)} MB (${fmt(before.heapUsedBytes / MB, 1)} before) of ${fmt(stats.heapTotalBytes / MB, 1)} MB (${fmt(before.heapTotalBytes / MB, 1)} before), external ${fmt(stats.externalBytes / MB, 1)} MB`,
    );
    console.log(
      `  per socket           RSS ${fmt(perSocket / 1024, 2)} KB above the baseline (JS heap ${fmt(heapPerSocket / 1024, 2)} KB of it)`,
    );
    console.log(
      `  50,000 sockets       projected RSS ${fmt(projected / MB, 1)} MB = baseline + 50,000 × ${fmt(perSocket / 1024, 2)} KB, against the pod's ${fmt(POD_LIMIT_BYTES / MB)} MB limit: ${fmt(projected / POD_LIMIT_BYTES, 2)} (goal <= 1.00: ${projected <= POD_LIMIT_BYTES ? 'met' : 'not met'})`,
    );

    // One event to every tenant through the services' publisher (TenantEventPublisher.publishEach:
    // a PUBLISH per tenant channel, pipelined); latency is counted from the call to each socket's arrival.
    // The event is an `order.status` (the api sends only events of the tenant event contract), told
    // apart by its eventId.
    const events = new TenantEventPublisher<TenantEvent>(redis, s.keyPrefix);
    const orderId = randomUUID();
    let worst: Summary | undefined;
    let delivered = true;
    for (let round = 1; round <= FANOUT_ROUNDS; round++) {
      const id = randomUUID();
      const event = buildOrderStatus({
        eventId: id,
        orderId,
        state: 'paid',
        version: round,
        occurredAtMs: Date.now(),
      });
      await api.reset(false);
      const t0 = nowMs();
      await events.publishEach(tenants, event);
      const publishedMs = nowMs() - t0;
      const everyone = await waitUntil(
        async () =>
          (await Promise.all(clients.map((c) => c.ask({ cmd: 'count', id }, 'count')))).reduce(
            (n, c) => n + c.n,
            0,
          ) >= readyCount,
        30_000,
      );
      const delays = new Samples();
      for (const c of clients) {
        for (const a of (await c.ask({ cmd: 'arrivals', id }, 'arrivals')).at) delays.add(a - t0);
      }
      const d = delays.summary();
      // The api's CPU time from the publish to the last arrival: the work, apart from waiting for a core.
      const cpuMs = ((await api.stats()).cpuPercent / 100) * (nowMs() - t0);
      delivered &&= everyone;
      if (!worst || d.p99 > worst.p99 || Number.isNaN(d.p99)) worst = d;
      console.log(
        `  event to every tenant round ${round}: ${everyone ? 'reached' : 'did NOT reach'} ${fmt(d.n)} of ${fmt(readyCount)} sockets (${fmt(tenantCount)} PUBLISHes in ${fmt(publishedMs, 1)} ms): p50 ${fmt(d.p50, 1)} ms, p99 ${fmt(d.p99, 1)} ms, last ${fmt(d.max, 1)} ms; api CPU ${fmt(cpuMs)} ms`,
      );
    }
    const fanout = worst as Summary;
    const after = procRss(api.pid);
    console.log(
      `  api RSS after fan-out ${fmt(after.rss / MB, 1)} MB (peak ${fmt(after.peak / MB, 1)} MB)`,
    );
    console.log(
      `  fan-out p99 (worst round) ${fmt(fanout.p99, 1)} ms against ${fmt(FANOUT_P99_GOAL_MS)} ms: ${fmt(fanout.p99 / FANOUT_P99_GOAL_MS, 2)} (goal <= 1.00: ${fanout.p99 <= FANOUT_P99_GOAL_MS && delivered ? 'met' : 'not met'})`,
    );
    return {
      wanted,
      ready: readyCount,
      refused,
      rssBytes: rss,
      baselineRssBytes: baseline,
      perSocketBytes: perSocket,
      heapPerSocketBytes: heapPerSocket,
      projectedBytes: projected,
      fanout,
      pushed: delivered,
    };
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    redis.disconnect();
    await api.stop();
  }
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = nowMs() + timeoutMs;
  while (!(await check())) {
    if (nowMs() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** Sustained: every command of the step answered, at >= 95 % of the schedule, no errors, p99 under the bound. */
const SWEEP_P99_MS = 50;
const SWEEP_MIN_DONE = 0.95;

export interface SweepStep {
  rate: number;
  ours?: RoundTripResult;
  bare?: RoundTripResult;
}

export interface SweepResult {
  steps: SweepStep[];
  seconds: number;
  /** The highest step each side sustained (0: none); `top` when a side sustained every step it was given. */
  ours: number;
  bare: number;
  top: number;
}

function sustained(rate: number, r: RoundTripResult): boolean {
  return (
    Object.keys(r.errors).length === 0 &&
    r.donePerSecond >= SWEEP_MIN_DONE * rate &&
    r.latency.p99 < SWEEP_P99_MS
  );
}

/**
 * Steps the rate up, each step a warm-up and `seconds` measured, ours and the bare peer in turn;
 * a side that fails a step is not tried at higher ones.
 */
async function sweep(
  ours: Side,
  bare: Side,
  rates: readonly number[],
  seconds: number,
): Promise<SweepResult> {
  const steps: SweepStep[] = [];
  const best = { ours: 0, bare: 0 };
  const failed = { ours: false, bare: false };
  console.log(
    `-- rate sweep: ${rates.join(', ')}/s, ${seconds} s each (+2 s warm-up); sustained = p99 < ${SWEEP_P99_MS} ms, results >= ${SWEEP_MIN_DONE * 100} % of the schedule, 0 errors`,
  );
  for (const rate of rates) {
    const step: SweepStep = { rate };
    for (const [name, side] of [
      ['ours', ours],
      ['bare', bare],
    ] as const) {
      if (failed[name]) continue;
      side.restart(rate);
      await side.block(2_000, false);
      await side.block(seconds * 1000, true);
      const r = side.result();
      step[name] = r;
      const ok = sustained(rate, r);
      if (ok) best[name] = rate;
      else failed[name] = true;
      console.log(
        `  ${String(rate).padStart(5)}/s ${name.padEnd(4)} p50 ${fmt(r.latency.p50, 2).padStart(7)} ms  p99 ${fmt(r.latency.p99, 2).padStart(8)} ms  ` +
          `sent ${fmt(r.sentPerSecond, 0).padStart(5)}/s  done ${fmt(r.donePerSecond, 0).padStart(5)}/s  errors ${Object.keys(r.errors).length === 0 ? '0' : JSON.stringify(r.errors)}  ${ok ? 'sustained' : 'NOT sustained'}`,
      );
    }
    steps.push(step);
    if (failed.ours && failed.bare) break;
  }
  const top = rates[rates.length - 1] ?? 0;
  const say = (n: number, f: boolean) => (f ? `${fmt(n)}/s` : `>= ${fmt(n)}/s (the top step)`);
  console.log(
    `  highest sustained    ours ${say(best.ours, failed.ours)}, bare amqplib ${say(best.bare, failed.bare)}; ratio ${(best.ours / Math.max(1, best.bare)).toFixed(2)}`,
  );
  return { steps, seconds, ours: best.ours, bare: best.bare, top };
}

export interface SmartHomeParts {
  /** The open-door round trip at BENCH_SH_RATE against the bare peer. */
  roundTrip: boolean;
  /** The rate sweep of ours and the bare peer (BENCH_SH_SWEEP). */
  sweep: boolean;
  /** Tenant WebSockets on one api: memory and fan-out. */
  webSockets: boolean;
}

export async function runSmartHomeBench(
  parts: SmartHomeParts = { roundTrip: true, sweep: true, webSockets: true },
): Promise<SmartHomeResult> {
  const rate = envInt('BENCH_SH_RATE', 500);
  const seconds = envInt('BENCH_SH_SECONDS', 20);
  const warmup = envInt('BENCH_SH_WARMUP_SECONDS', 5, 0);
  const tenantCount = envInt('BENCH_SH_TENANTS', 200);
  const rates = (process.env.BENCH_SH_SWEEP ?? '250,500,1000,1500,2000,3000')
    .split(',')
    .map((r) => Number(r.trim()));
  if (rates.some((r) => !Number.isInteger(r) || r < 1)) {
    throw new Error(
      `BENCH_SH_SWEEP must be a comma-separated list of rates, got "${process.env.BENCH_SH_SWEEP}"`,
    );
  }
  const sweepSeconds = envInt('BENCH_SH_SWEEP_SECONDS', 10);
  const wsWanted = envInt('BENCH_SH_SOCKETS', 19_000);
  const wsTenants = envInt('BENCH_SH_WS_TENANTS', wsWanted);
  const profile = process.env.BENCH_SH_PROFILE === '1';
  console.log(
    `\n== smart-home:${parts.roundTrip ? ` open-door round trip at ${rate}/s open loop for ${seconds} s (+${warmup} s warm-up), ${fmt(tenantCount)} tenants;` : ''}` +
      `${parts.sweep ? ` rate sweep ${rates.join(', ')}/s;` : ''}${parts.webSockets ? ` ${fmt(wsWanted)} WebSockets on one api` : ''} ==`,
  );
  const s = await setUp();
  const children: Child[] = [];
  const result: SmartHomeResult = { rate, seconds };
  try {
    if (parts.roundTrip || parts.sweep) {
      console.log(
        '  processes: load generator (this one), hub = api + mq-bridge, partner simulator, bare replier; PostgreSQL, Redis, RabbitMQ on the same 2 cores',
      );
      const start = (name: string, roles: ChildRole[], withProfile = false) => {
        const c = Child.start(name, { ...s.base, roles, profile: withProfile });
        children.push(c);
        return c;
      };
      const hub = start('hub', ['bridge', 'api'], profile);
      const partner = start('partner', ['partner'], profile);
      const echo = start('bare replier', ['echo']);
      const url = new URL((await withDeadline(hub.started, 60_000, 'the hub to start')) as string);
      await withDeadline(
        Promise.all([partner.started, echo.started]),
        60_000,
        'the partner simulator and the bare replier to start',
      );

      const ours = await oursSide(s, hub, partner, url, rate, tenantCount, profile);
      const bare = await bareSide(s, echo, rate);
      try {
        if (parts.roundTrip) {
          await ours.block(warmup * 1000, false);
          await bare.block(warmup * 1000, false);
          // ABBA order over blocks of BLOCK_SECONDS: a drift of the shared machine hits both sides alike.
          const blocks = Math.max(1, Math.round(seconds / BLOCK_SECONDS));
          for (let b = 0; b < blocks; b++) {
            const order = b % 2 === 0 ? [ours, bare] : [bare, ours];
            for (const side of order) await side.block((seconds * 1000) / blocks, true);
          }
          console.log(
            `-- ours: REST open → RabbitMQ → partner → bridge → Redis → WebSocket${profile ? ' (stages timed: adds overhead)' : ''}`,
          );
          await ours.report();
          console.log(
            '-- bare amqplib: publish (confirm channel) → quorum queue → replier → quorum reply queue → consumer',
          );
          await bare.report();
          const [o, r] = [ours.result(), bare.result()];
          const ratio = o.latency.p99 / r.latency.p99;
          console.log(
            `  p99 ratio            ${ratio.toFixed(2)} (ours ${fmt(o.latency.p99, 2)} ms / bare ${fmt(r.latency.p99, 2)} ms; goal <= ${P99_GOAL.toFixed(1)}: ${ratio <= P99_GOAL ? 'met' : 'not met'})`,
          );
          result.roundTrip = { ours: o, bare: r, ratio };
        }
        if (parts.sweep) result.sweep = await sweep(ours, bare, rates, sweepSeconds);
      } finally {
        await ours.close();
        await bare.close();
      }
      for (const c of [hub, partner, echo]) await c.stop();
      children.length = 0;
    }
    if (parts.webSockets) {
      console.log(
        `-- ${fmt(wsWanted)} tenant WebSockets held by one api process (nothing else in it)`,
      );
      result.ws = await webSockets(s, wsWanted, wsTenants);
    }
    return result;
  } finally {
    for (const c of children) await c.stop().catch(() => undefined);
    await tearDown(s);
  }
}
