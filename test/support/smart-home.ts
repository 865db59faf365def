// A smart-home test bench on the real servers: the tenant identity provider, an api (HTTP +
// WebSocket) and an mq-bridge on their own vhost, schema and Redis prefix, a partner simulator, and
// helpers to call the API as a tenant and to watch a tenant's WebSocket.
import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { connectAmqp, type AmqpConnectionManager } from '../../services/core/amqp.js';
import { TenantJwtAuthenticator } from '../../services/core/auth/tenant-jwt.js';
import { loadConfig } from '../../services/core/config.js';
import { FieldCipher } from '../../services/core/field-cipher.js';
import { createMetrics, type Metrics } from '../../services/core/metrics.js';
import { buildApi } from '../../services/api/app.js';
import { tenantApiEnv } from '../../services/api/config.js';
import { createTenantApi } from '../../services/api/smart-home/index.js';
import { buildReply, type CommandMessage } from '../../services/contracts/smart-home-messages.js';
import { createMqBridge, type MqBridge } from '../../services/mq-bridge/service.js';
import { REPLIES_EXCHANGE } from '../../services/contracts/smart-home-topology.js';
import { upsertPartner } from '../../services/domains/smart-home/partners.js';
import {
  smartHomePartnerResource,
  defaultCommandQueue,
} from '../../services/contracts/smart-home-partner.js';
import { API_VERSION } from '../../services/core/resource.js';
import {
  PartnerSimulator,
  type PartnerBehaviour,
} from '../../services/simulators/smart-home/partner.js';
import { startTenantIdp, type TenantIdp } from '../../services/simulators/tenant-idp/server.js';
import type { Logger } from '../../services/core/logger.js';
import type { Db } from '../../services/core/db.js';
import { createTestContext, REDIS_URL, waitFor, type TestContext } from './context.js';
import { createVhost, type TestVhost } from './amqp.js';
import { track } from './leaks.js';

export const TEST_KEY = randomBytes(32).toString('base64');

/** Environment of a tenant API / bridge for this test context. */
export function smartHomeEnv(
  ctx: TestContext,
  amqpUrl: string,
  idp: TenantIdp,
  overrides: Record<string, string> = {},
) {
  return {
    REDIS_URL,
    REDIS_KEY_PREFIX: ctx.keyPrefix,
    AMQP_URL: amqpUrl,
    TENANT_JWT_ISSUER: idp.issuer,
    TENANT_JWKS_URL: idp.jwksUrl,
    TENANT_JWT_AUDIENCE: idp.audience,
    DATA_ENCRYPTION_KEYS: `k1:${TEST_KEY}`,
    SMART_HOME_REPLY_TIMEOUT_MS: '2000',
    SMART_HOME_MAX_ATTEMPTS: '3',
    SMART_HOME_COMMAND_TTL_MS: '3000',
    WS_HEARTBEAT_MS: '5000',
    ...overrides,
  };
}

export async function addPartner(
  ctx: TestContext,
  name = 'acme',
  services: ('intercom' | 'barrier')[] = ['intercom', 'barrier'],
) {
  await upsertPartner(
    ctx.db,
    smartHomePartnerResource.parse({
      apiVersion: API_VERSION,
      kind: 'SmartHomePartner',
      metadata: { name },
      spec: { services },
    }),
  );
  return { name, commandQueue: defaultCommandQueue(name) };
}

export interface ApiInstance {
  app: FastifyInstance;
  url: string;
  metrics: Metrics;
  close(): Promise<void>;
}

/**
 * An api replica in this process: its own Redis connections, AMQP connection and HTTP port; the
 * context's PostgreSQL pool unless `o.db` names another, and REDIS_URL for its subscriber unless
 * `o.subscriberUrl` names another way to the same Redis.
 */
export async function startApi(
  ctx: TestContext,
  amqpUrl: string,
  idp: TenantIdp,
  logger: Logger = ctx.logger,
  env: Record<string, string> = {},
  o: { db?: Db; subscriberUrl?: string } = {},
): Promise<ApiInstance> {
  const config = loadConfig(tenantApiEnv, smartHomeEnv(ctx, amqpUrl, idp, env));
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 1 });
  const redisSubscriber = new Redis(o.subscriberUrl ?? config.REDIS_URL);
  const amqp = connectAmqp(amqpUrl, logger, { name: 'test api' });
  const metrics = createMetrics();
  const db = o.db ?? ctx.db;
  const tenant = createTenantApi({
    db,
    redis,
    redisSubscriber,
    amqp,
    authenticator: new TenantJwtAuthenticator(config),
    cipher: new FieldCipher(config.DATA_ENCRYPTION_KEYS),
    config,
    logger,
    metrics,
  });
  const app = buildApi({ db, logger, metrics, readiness: [], tenant });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const untrack = track('test api');
  return {
    app,
    url,
    metrics,
    async close() {
      await app.close();
      await amqp.close();
      redis.disconnect();
      redisSubscriber.disconnect();
      untrack();
    },
  };
}

export interface BridgeInstance {
  bridge: MqBridge;
  metrics: Metrics;
  amqp: AmqpConnectionManager;
  close(): Promise<void>;
}

/** `redis`: the bridge's Redis (smart-home-cache, tenant events) when not the context's; `env.REDIS_URL` opens one of its own. */
export async function startBridge(
  ctx: TestContext,
  amqpUrl: string,
  idp: TenantIdp,
  logger: Logger = ctx.logger,
  env: Record<string, string> = {},
  redis: Redis = ctx.redis,
): Promise<BridgeInstance> {
  const config = loadConfig(tenantApiEnv, smartHomeEnv(ctx, amqpUrl, idp, env));
  const amqp = connectAmqp(amqpUrl, logger, { name: 'test bridge' });
  const metrics = createMetrics();
  const ownRedis = env.REDIS_URL
    ? new Redis(env.REDIS_URL, { maxRetriesPerRequest: 1 })
    : undefined;
  ownRedis?.on('error', () => undefined);
  const bridge = createMqBridge({
    db: ctx.db,
    redis: ownRedis ?? redis,
    amqp,
    cipher: new FieldCipher(config.DATA_ENCRYPTION_KEYS),
    config,
    logger,
    metrics,
    owner: `bridge-${randomUUID().slice(0, 6)}`,
    pollMaxMs: 100,
  });
  await bridge.start();
  const untrack = track('test bridge');
  return {
    bridge,
    metrics,
    amqp,
    async close() {
      await bridge.stop(5_000);
      await amqp.close();
      ownRedis?.disconnect();
      untrack();
    },
  };
}

export async function startPartner(
  ctx: TestContext,
  amqpUrl: string,
  partner: { name: string; commandQueue: string },
  behaviour: Partial<PartnerBehaviour> = {},
) {
  const sim = new PartnerSimulator({
    amqpUrl,
    partner: partner.name,
    commandQueue: partner.commandQueue,
    logger: ctx.logger,
    behaviour,
  });
  await sim.start();
  const untrack = track('partner simulator');
  const stop = sim.stop.bind(sim);
  sim.stop = async () => {
    await stop();
    untrack();
  };
  return sim;
}

export { startTenantIdp };

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- assertions read arbitrary JSON answers
type JsonAnswer = Record<string, any>;

/** Calls the API as a tenant. */
export async function call(
  base: string,
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as JsonAnswer };
}

export interface TenantSocket {
  events: Record<string, unknown>[];
  next(
    pred: (e: Record<string, unknown>) => boolean,
    timeoutMs?: number,
    what?: string,
  ): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/** Opens the tenant's WebSocket and resolves once the server says it is subscribed (`ready`). */
export async function openSocket(base: string, token: string): Promise<TenantSocket> {
  const ws = new WebSocket(
    `${base.replace(/^http/, 'ws')}/v1/events?access_token=${encodeURIComponent(token)}`,
  );
  const events: Record<string, unknown>[] = [];
  ws.on('message', (data) => events.push(JSON.parse(data.toString()) as Record<string, unknown>));
  const untrack = track('tenant websocket');
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    ws.on('error', reject);
    // With this listener the client must end the refused request itself.
    ws.once('unexpected-response', (req, res) => {
      reject(new Error(`websocket refused with ${res.statusCode}`));
      req.destroy();
    });
    ws.once('open', () => resolve());
  }).catch((e: unknown) => {
    untrack();
    throw e;
  });
  const sock: TenantSocket = {
    events,
    next: (pred, timeoutMs = 10_000, what = 'a websocket event') =>
      waitFor(
        () => events.find(pred),
        timeoutMs,
        `${what} (got ${JSON.stringify(events.map((e) => e.type))})`,
      ),
    async close() {
      ws.close();
      await closed;
      untrack();
    },
  };
  await sock.next((e) => e.type === 'ready', 5_000, 'ready');
  return sock;
}

export const PERSONAL = {
  fullName: 'Anna Petrova',
  phone: '+7 916 555-01-02',
  apartment: '117',
  vehiclePlate: 'A123BC77',
};

export interface Stack {
  ctx: TestContext;
  vhost: TestVhost;
  idp: TenantIdp;
  api: ApiInstance;
  /** Absent when started with `bridge: false`. */
  bridge?: BridgeInstance;
  partner?: PartnerSimulator;
  partnerInfo: { name: string; commandQueue: string };
  close(): Promise<void>;
}

/**
 * The whole smart-home stack for one test file: schema, vhost, identity provider, partner row,
 * bridge, api and partner simulator (each optional), closed in reverse order.
 */
export async function startStack(
  label: string,
  o: {
    env?: Record<string, string>;
    logger?: Logger;
    bridge?: boolean;
    partner?: false | Partial<PartnerBehaviour>;
    partnerName?: string;
    /** A broker of the test's own (test/support/rabbitmq-node.ts) instead of a vhost on the machine's. */
    amqpUrl?: string;
    /** The api's subscriber connects here instead of REDIS_URL (e.g. through a test/support/tcp-gate.ts). */
    apiSubscriberUrl?: string;
  } = {},
): Promise<Stack> {
  const ctx = await createTestContext(label);
  const vhost: TestVhost = o.amqpUrl
    ? { vhost: '/', url: o.amqpUrl, close: async () => undefined }
    : await createVhost(label);
  const idp = await startTenantIdp();
  const logger = o.logger ?? ctx.logger;
  const partnerInfo = await addPartner(ctx, o.partnerName ?? 'acme');
  const bridge =
    o.bridge === false ? undefined : await startBridge(ctx, vhost.url, idp, logger, o.env);
  const api = await startApi(ctx, vhost.url, idp, logger, o.env, {
    subscriberUrl: o.apiSubscriberUrl,
  });
  const partner =
    o.partner === false
      ? undefined
      : await startPartner(ctx, vhost.url, partnerInfo, o.partner ?? {});
  const stack: Stack = {
    ctx,
    vhost,
    idp,
    api,
    bridge,
    partner,
    partnerInfo,
    async close() {
      await partner?.stop();
      await api.close();
      await stack.bridge?.close();
      await idp.close();
      await vhost.close();
      await ctx.close();
    },
  };
  return stack;
}

/** A new tenant of `stack` with its intercom connected (REST, through the bridge and the partner). */
export async function connectedTenant(stack: Stack): Promise<{ tenant: string; token: string }> {
  const tenant = `tenant-${Math.random().toString(36).slice(2, 10)}`;
  const token = await stack.idp.issue(tenant);
  const res = await call(
    stack.api.url,
    'POST',
    '/v1/smart-home/subscriptions/intercom/connect',
    token,
    { personalData: PERSONAL, biometricsConsent: true },
  );
  if (res.status !== 202) {
    throw new Error(`connect answered ${res.status}: ${JSON.stringify(res.body)}`);
  }
  await waitFor(
    async () =>
      (await call(stack.api.url, 'GET', '/v1/smart-home/subscriptions', token)).body
        .subscriptions[0]?.state === 'connected',
    10_000,
    'connected',
  );
  return { tenant, token };
}

/** Opens the tenant's intercom and waits until the stack's partner simulator received the command. */
export async function openCommand(
  stack: Stack,
  token: string,
): Promise<{ id: string; command: CommandMessage }> {
  const res = await call(
    stack.api.url,
    'POST',
    '/v1/smart-home/subscriptions/intercom/open',
    token,
  );
  if (res.status !== 202) {
    throw new Error(`open answered ${res.status}: ${JSON.stringify(res.body)}`);
  }
  const id = res.body.commandId as string;
  const partner = stack.partner;
  if (!partner) throw new Error('the stack runs no partner simulator');
  const command = await waitFor(
    () => partner.received.find((r) => r.command.correlationId === id)?.command,
    10_000,
    'the partner received the open',
  );
  return { id, command };
}

/** Publishes the partner's reply to `command` as the partner does (confirmed). */
export async function replyAsPartner(
  stack: Stack,
  command: CommandMessage,
  outcome: 'success' | 'failure',
): Promise<void> {
  const conn = connectAmqp(stack.vhost.url, stack.ctx.logger, { name: 'test partner reply' });
  const ch = conn.createChannel({ confirm: true });
  try {
    const r = buildReply(command, outcome);
    await ch.publish(REPLIES_EXCHANGE, stack.partnerInfo.name, Buffer.from(JSON.stringify(r)), {
      persistent: true,
      type: r.type,
      messageId: r.messageId,
      correlationId: r.correlationId,
    });
  } finally {
    await ch.close();
    await conn.close();
  }
}
