// A child process of the smart-home benchmark (`node dist/bench/smart-home-server.js`, forked with
// an IPC channel): the hub side (tenant api, mq-bridge), the partner simulator or the bare AMQP
// replier, each in its own process so that the load generator never runs on their event loop.
// With `profile` it times the hot-path stages by wrapping the clients it hands to the services.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import amqplib from 'amqplib';
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Command, Redis } from 'ioredis';
import { buildApi } from '../services/api/app.js';
import { tenantApiEnv } from '../services/api/config.js';
import { createTenantApi, type TenantApi } from '../services/api/smart-home/index.js';
import { connectAmqp } from '../services/core/amqp.js';
import { TenantJwtAuthenticator, type Authenticator } from '../services/core/auth/tenant-jwt.js';
import { loadConfig } from '../services/core/config.js';
import { createDb, type Db } from '../services/core/db.js';
import { FieldCipher } from '../services/core/field-cipher.js';
import { createMetrics } from '../services/core/metrics.js';
import { createRedis } from '../services/core/redis.js';
import { createMqBridge, type MqBridge } from '../services/mq-bridge/service.js';
import { PartnerSimulator } from '../services/simulators/smart-home/partner.js';
import { benchLogger } from './support.js';
import {
  nowMs,
  Stages,
  type ChildConfig,
  type ChildStats,
  type FromChild,
  type ToChild,
} from './smart-home-stats.js';

const raw = process.env.BENCH_SH_CHILD;
if (!raw || !process.send) {
  throw new Error(
    'smart-home-server is started by the smart-home benchmark (fork with BENCH_SH_CHILD)',
  );
}
const cfg = JSON.parse(raw) as ChildConfig;
const logger = benchLogger();
const stages = new Stages();
const send = (m: FromChild): void => {
  process.send?.(m);
};

/** Times every command of this connection by name (evalsha is the command-result script). */
function timeRedis(
  redis: Redis,
  label: string,
  onReply?: (cmd: Command, reply: unknown) => void,
): void {
  const original = redis.sendCommand.bind(redis);
  redis.sendCommand = (cmd: Command, stream?: Parameters<Redis['sendCommand']>[1]) => {
    const t = nowMs();
    const result = original(cmd, stream);
    cmd.promise.then(
      (reply: unknown) => {
        stages.add(`${label} redis ${cmd.name}`, nowMs() - t);
        onReply?.(cmd, reply);
      },
      () => undefined,
    );
    return result;
  };
}

/** Times each publish of the channels created on `conn` from call to broker confirm. */
function timeAmqp(conn: AmqpConnectionManager, label: string): void {
  const original = conn.createChannel.bind(conn);
  conn.createChannel = (opts) => {
    const ch: ChannelWrapper = original(opts);
    const publish = ch.publish.bind(ch);
    ch.publish = async (...args: Parameters<ChannelWrapper['publish']>) => {
      const t = nowMs();
      try {
        return await publish(...args);
      } finally {
        stages.add(`${label} amqp publish+confirm (${opts?.name ?? 'channel'})`, nowMs() - t);
      }
    };
    return ch;
  };
}

/** Times the SQL statements of this pool (the open route runs a select and an insert, the reply an update). */
function timeDb(db: Db, label: string): void {
  const started = new Map<string, number>();
  db.on('query', (q: { __knexQueryUid: string }) => started.set(q.__knexQueryUid, nowMs()));
  db.on('query-response', (_rows: unknown, q: { __knexQueryUid: string; sql: string }) => {
    const t = started.get(q.__knexQueryUid);
    started.delete(q.__knexQueryUid);
    if (t !== undefined) {
      stages.add(`${label} sql ${q.sql.trim().split(/\s+/)[0]?.toLowerCase() ?? ''}`, nowMs() - t);
    }
  });
}

function timedAuthenticator(inner: Authenticator): Authenticator {
  return {
    async verify(token) {
      const t = nowMs();
      try {
        return await inner.verify(token);
      } finally {
        stages.add('api jwt verify', nowMs() - t);
      }
    },
  };
}

function serviceEnv(): Record<string, string> {
  return {
    REDIS_URL: cfg.redisUrl,
    REDIS_KEY_PREFIX: cfg.keyPrefix,
    AMQP_URL: cfg.amqpUrl,
    ...cfg.env,
  };
}

async function ready(redis: Redis): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    redis.once('ready', resolve);
    redis.once('error', reject);
  });
}

/**
 * BENCH_SH_HUB_NODELAY=1 turns Nagle's algorithm off on the hub's AMQP sockets (amqplib leaves it
 * on unless told), to measure that change without editing the services.
 */
const hubAmqpOptions =
  process.env.BENCH_SH_HUB_NODELAY === '1' ? { connectionOptions: { noDelay: true } } : {};

interface Part {
  close(): Promise<void>;
}

async function startApi(parts: Part[]): Promise<{ url: string; tenant: TenantApi }> {
  const config = loadConfig(tenantApiEnv, serviceEnv());
  // BENCH_SH_API_DB_POOL: the api's PostgreSQL pool (the service's default, 10, unless set), to see what waiting for a connection costs.
  const db = createDb(
    {
      DATABASE_URL: cfg.databaseUrl,
      DATABASE_SCHEMA: cfg.schema,
      DATABASE_POOL_MAX: Number(process.env.BENCH_SH_API_DB_POOL ?? 10),
    },
    { applicationName: 'bench-sh-api' },
  );
  const redis = createRedis(config);
  const redisSubscriber = createRedis(config, { subscriber: true });
  for (const r of [redis, redisSubscriber]) {
    r.on('error', (err) => logger.warn({ err }, 'redis error'));
  }
  const amqp = connectAmqp(cfg.amqpUrl, logger, { name: 'bench api', ...hubAmqpOptions });
  let authenticator: Authenticator = new TenantJwtAuthenticator(config);
  if (cfg.profile) {
    timeRedis(redis, 'api');
    timeAmqp(amqp, 'api');
    timeDb(db, 'api');
    authenticator = timedAuthenticator(authenticator);
  }
  await Promise.all([ready(redis), ready(redisSubscriber)]);
  const metrics = createMetrics();
  const tenant = createTenantApi({
    db,
    redis,
    redisSubscriber,
    amqp,
    authenticator,
    cipher: new FieldCipher(config.DATA_ENCRYPTION_KEYS),
    config,
    logger,
    metrics,
  });
  const app: FastifyInstance = buildApi({
    db,
    logger,
    metrics,
    readiness: [],
    tenant,
    ...(cfg.maxConnections ? { limits: { HTTP_MAX_CONNECTIONS: cfg.maxConnections } } : {}),
  });
  if (cfg.profile) {
    const begun = new WeakMap<FastifyRequest, number>();
    app.addHook('onRequest', async (req) => {
      begun.set(req, nowMs());
    });
    app.addHook('onResponse', async (req) => {
      const t = begun.get(req);
      if (t !== undefined) {
        stages.add(`api request total (${req.method} ${req.routeOptions.url ?? '?'})`, nowMs() - t);
      }
    });
  }
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  parts.push({
    async close() {
      await app.close();
      await amqp.close();
      await db.destroy();
      redis.disconnect();
      redisSubscriber.disconnect();
    },
  });
  return { url, tenant };
}

async function startBridge(parts: Part[]): Promise<MqBridge> {
  const config = loadConfig(tenantApiEnv, serviceEnv());
  const db = createDb(
    { DATABASE_URL: cfg.databaseUrl, DATABASE_SCHEMA: cfg.schema, DATABASE_POOL_MAX: 10 },
    { applicationName: 'bench-sh-bridge' },
  );
  const redis = createRedis(config);
  redis.on('error', (err) => logger.warn({ err }, 'redis error'));
  const amqp = connectAmqp(cfg.amqpUrl, logger, { name: 'bench bridge', ...hubAmqpOptions });
  if (cfg.profile) {
    timeRedis(redis, 'bridge');
    timeDb(db, 'bridge');
    timeAmqp(amqp, 'bridge');
  }
  await ready(redis);
  const bridge = createMqBridge({
    db,
    redis,
    amqp,
    cipher: new FieldCipher(config.DATA_ENCRYPTION_KEYS),
    config,
    logger,
    metrics: createMetrics(),
    owner: `bench-bridge-${process.pid}`,
    pollMaxMs: 200,
  });
  await bridge.start();
  parts.push({
    async close() {
      await bridge.stop(5_000);
      await amqp.close();
      await db.destroy();
      redis.disconnect();
    },
  });
  return bridge;
}

async function startPartner(parts: Part[]): Promise<PartnerSimulator> {
  const sim = new PartnerSimulator({
    amqpUrl: cfg.amqpUrl,
    partner: cfg.partner,
    commandQueue: cfg.commandQueue,
    logger,
    behaviour: { delayMs: 0 },
  });
  await sim.start();
  parts.push({ close: () => sim.stop() });
  return sim;
}

/** The bare peer's replier: amqplib only; replies on a confirm channel and acks after the confirm, like the partner simulator. */
async function startEcho(parts: Part[]): Promise<void> {
  const conn = await amqplib.connect(cfg.amqpUrl, {
    noDelay: process.env.BENCH_SH_BARE_NODELAY !== '0',
  });
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue(cfg.echoQueue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await ch.prefetch(100);
  await ch.consume(cfg.echoQueue, (msg) => {
    if (!msg) return;
    const replyTo = String(msg.properties.replyTo);
    ch.publish(
      '',
      replyTo,
      msg.content,
      { persistent: true, correlationId: msg.properties.correlationId as string },
      (err: unknown) => {
        if (err) ch.nack(msg, false, true);
        else ch.ack(msg);
      },
    );
  });
  parts.push({
    async close() {
      await ch.close().catch(() => undefined);
      await conn.close().catch(() => undefined);
    },
  });
}

async function main(): Promise<void> {
  const parts: Part[] = [];
  let api: { url: string; tenant: TenantApi } | undefined;
  let partner: PartnerSimulator | undefined;
  // The bridge declares the partner queue the partner and the api publish to, so it starts first.
  if (cfg.roles.includes('bridge')) await startBridge(parts);
  if (cfg.roles.includes('partner')) partner = await startPartner(parts);
  if (cfg.roles.includes('echo')) await startEcho(parts);
  if (cfg.roles.includes('api')) api = await startApi(parts);

  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  let cpuFrom = process.cpuUsage();
  let cpuAt = nowMs();
  let partnerSeen = 0;
  const reset = (withStages: boolean) => {
    loop.reset();
    cpuFrom = process.cpuUsage();
    cpuAt = nowMs();
    if (!withStages) return;
    stages.reset();
    partnerSeen = partner?.received.length ?? 0;
  };
  const stats = (): ChildStats => {
    if (partner && cfg.profile) {
      // createdAt is stamped by Redis when the api records the command, just before publishing it.
      const received = partner.received;
      for (; partnerSeen < received.length; partnerSeen++) {
        const r = received[partnerSeen];
        if (r?.command.type === 'device.open') {
          stages.add(
            'command created → partner received',
            r.receivedAt - Date.parse(r.command.createdAt),
          );
        }
      }
    }
    const cpu = process.cpuUsage(cpuFrom);
    const mem = process.memoryUsage();
    return {
      pid: process.pid,
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      heapTotalBytes: mem.heapTotal,
      externalBytes: mem.external,
      cpuPercent: ((cpu.user + cpu.system) / 1000 / Math.max(1, nowMs() - cpuAt)) * 100,
      loopDelay: {
        p50: loop.percentile(50) / 1e6,
        p99: loop.percentile(99) / 1e6,
        max: loop.max / 1e6,
      },
      webSockets: api?.tenant.sockets.connections ?? 0,
      stages: stages.summaries(),
    };
  };
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    for (const p of parts.reverse()) {
      await p.close().catch((e: unknown) => logger.warn({ err: e }, 'close failed'));
    }
    send({ type: 'stopped' });
    process.disconnect?.();
    process.exit(0);
  };
  process.on('message', (m: ToChild) => {
    if (m.cmd === 'stats') {
      // Twice: the first collection's finalizers free more for the second.
      if (m.gc && typeof globalThis.gc === 'function') for (let i = 0; i < 2; i++) globalThis.gc();
      send({ type: 'stats', stats: stats() });
    } else if (m.cmd === 'reset') {
      reset(m.stages);
      send({ type: 'reset' });
    } else void stop();
  });
  // An orphan (the benchmark crashed) must not hold sockets and queues.
  process.on('disconnect', () => void stop());
  send({ type: 'ready', url: api?.url });
}

main().catch((e: unknown) => {
  send({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  process.exit(1);
});
