// The services under fuzz, as deployed: the built api (tenant REST, WebSocket, both webhooks, the
// kitchen and its status consumer), mq-bridge (partner replies) and auth (token endpoint) run as
// child processes on a schema, Redis prefix and vhost of their own, with real credentials so that
// fuzzed requests reach deep code: a tenant token, API keys, a webhook key, a partner client.
import { randomBytes, randomUUID } from 'node:crypto';
import { connect, type Channel, type ChannelModel } from 'amqplib';
import { createApiKey } from '../../services/core/auth/api-keys.js';
import { AuthClientStore } from '../../services/domains/partner-access/clients.js';
import { freePort } from '../../services/core/net.js';
import { sign } from '../../services/contracts/standard-webhooks.js';
import { BORSCHT, SALAD } from '../../services/hub/demo-cards.js';
import { assertStatusTopology, DEAD_QUEUE } from '../../services/domains/kitchen/status-events.js';
import { applyEvent, warehouseEvent } from '../../services/domains/kitchen/warehouse-events.js';
import { buildReply, commandMessage } from '../../services/contracts/smart-home-messages.js';
import {
  DEAD_LETTER_QUEUE,
  REPLIES_EXCHANGE,
} from '../../services/contracts/smart-home-topology.js';
import { startTenantIdp, type TenantIdp } from '../../services/simulators/tenant-idp/server.js';
import { addIntegration } from '../support/allio.js';
import { createVhost, type TestVhost } from '../support/amqp.js';
import {
  createTestContext,
  DATABASE_URL,
  REDIS_URL,
  waitFor,
  type TestContext,
} from '../support/context.js';
import { addPartner, TEST_KEY } from '../support/smart-home.js';
import { ensureBuilt, spawnBuilt, type Child } from './child.js';

export const ENTRIES = {
  api: 'dist/services/api/main.js',
  bridge: 'dist/services/mq-bridge/main.js',
  auth: 'dist/services/auth/main.js',
} as const;
export type ServiceName = keyof typeof ENTRIES;

export interface Service {
  name: ServiceName;
  port: number;
  child: Child;
  /** Deaths observed (the process exited while it should have been serving). */
  deaths: number;
  /** Exit code and the tail of its output, for each death. */
  obituaries: string[];
}

export interface FuzzStack {
  ctx: TestContext;
  vhost: TestVhost;
  idp: TenantIdp;
  services: Record<ServiceName, Service>;
  tenantId: string;
  tenantToken: string;
  /** Credentials by kind: working ones, and tokens that must not work or must not grant staff rights. */
  tokens: Record<TokenKind, string>;
  adminKey: string;
  operatorKey: string;
  webhookKey: string;
  integrationUuid: string;
  warehouseSecret: string;
  partner: string;
  authClient: { id: string; secret: string };
  /** A paid-for order's id and an unpaid one's, for valid-looking paths. */
  orderId: string;
  amqp: { conn: ChannelModel; ch: Channel };
  /** Commands the partner received, by type (the test plays the partner on its queue). */
  commands: Map<string, number>;
  /** Dead-lettered messages of both consumers, by their `x-fuzz-case` header. */
  deadLetters: Map<string, { queue: string; headers: Record<string, unknown> }>;
  /** Answers partner commands while true (setup); during fuzzing the partner stays silent. */
  partnerAnswers: { on: boolean };
  /** Every secret a log line must never carry. */
  secrets(): string[];
  /** Whether the service runs and answers /healthz; restarts it (counting a death) when it died. */
  ensureAlive(name: ServiceName): Promise<boolean>;
  close(): Promise<void>;
}

export const TOKEN_KINDS = [
  'tenant',
  'tenantB',
  'staffClaims',
  'expired',
  'wrongAudience',
  'forged',
] as const;
export type TokenKind = (typeof TOKEN_KINDS)[number];

export interface StackOptions {
  logLevel?: string;
  label?: string;
  /** Overrides of the children's environment (e.g. URLs that carry passwords), made once the vhost exists. */
  childEnv?: (vhost: TestVhost) => Promise<Record<string, string>>;
  /** Where the ALLIO integration's API is, and its token (default: an unreachable host). */
  allio?: { baseUrl: string; token: string };
}

function baseEnv(ctx: TestContext, vhost: TestVhost, logLevel: string): Record<string, string> {
  return {
    DATABASE_URL,
    DATABASE_SCHEMA: ctx.schema,
    REDIS_URL,
    REDIS_KEY_PREFIX: ctx.keyPrefix,
    AMQP_URL: vhost.url,
    LOG_LEVEL: logLevel,
    DATA_ENCRYPTION_KEYS: `k1:${TEST_KEY}`,
  };
}

export async function healthy(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, {
      signal: AbortSignal.timeout(5_000),
    });
    return res.status === 200;
  } catch {
    return false;
  }
}

/** Starts a built entry point on a free port and waits for its /healthz. */
export async function startService<N extends string>(
  name: N,
  entry: string,
  env: Record<string, string>,
): Promise<Omit<Service, 'name'> & { name: N }> {
  const port = await freePort();
  const extra: Record<string, string> =
    name === 'auth' ? { AUTH_ISSUER: `http://127.0.0.1:${port}` } : {};
  const child = spawnBuilt(name, entry, { ...env, ...extra, PORT: String(port) });
  await waitFor(
    async () => {
      if (child.exitCode() !== undefined) {
        throw new Error(`${name} exited with ${String(child.exitCode())}:\n${child.output()}`);
      }
      return healthy(port);
    },
    30_000,
    `${name} to answer /healthz`,
  ).catch(async (e: unknown) => {
    await child.stop();
    throw new Error(`${String(e)}\n${child.output().slice(-4000)}`);
  });
  return { name, port, child, deaths: 0, obituaries: [] };
}

/** Signs a warehouse webhook body the way the warehouse does (Standard Webhooks). */
export function warehouseHeaders(
  secret: string,
  body: string | Buffer,
  o: { id?: string; timestamp?: number } = {},
): Array<[string, string]> {
  const id = o.id ?? `msg_${randomUUID()}`;
  const ts = o.timestamp ?? Math.floor(Date.now() / 1000);
  return [
    ['content-type', 'application/json'],
    ['webhook-id', id],
    ['webhook-timestamp', String(ts)],
    ['webhook-signature', sign(secret, id, ts, body)],
  ];
}

async function call(
  port: number,
  method: string,
  path: string,
  o: { headers?: Record<string, string>; body?: string } = {},
) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: o.headers,
    body: o.body,
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
  return JSON.parse(text || '{}') as Record<string, unknown>;
}

export async function startFuzzStack(o: StackOptions = {}): Promise<FuzzStack> {
  ensureBuilt(Object.values(ENTRIES));
  const ctx = await createTestContext(o.label ?? 'fuzz');
  const vhost = await createVhost(o.label ?? 'fuzz');
  const idp = await startTenantIdp();
  const warehouseSecret = `whsec_${randomBytes(24).toString('base64')}`;
  const env = {
    ...baseEnv(ctx, vhost, o.logLevel ?? 'warn'),
    TENANT_JWT_ISSUER: idp.issuer,
    TENANT_JWKS_URL: idp.jwksUrl,
    TENANT_JWT_AUDIENCE: idp.audience,
    KITCHEN_API: 'true',
    KITCHEN_WAREHOUSE_WEBHOOK_SECRETS: warehouseSecret,
    // Requests the fuzz accepts are sent once and not again during the run.
    SMART_HOME_REPLY_TIMEOUT_MS: '3600000',
    SMART_HOME_COMMAND_TTL_MS: '300000',
    // The run reads the dead-letter queues itself (watchDeadLetters): the bridge leaves them there.
    DEAD_LETTERS_KEEP: 'false',
    ...(await o.childEnv?.(vhost)),
  };
  const { name: partner, commandQueue } = await addPartner(
    ctx,
    `fuzz-${randomBytes(3).toString('hex')}`,
  );
  const allio = o.allio ?? {
    baseUrl: 'https://allio.invalid/api',
    token: `allio-${randomBytes(12).toString('hex')}`,
  };
  const integration = await addIntegration(ctx.db, allio);
  const adminKey = (await createApiKey(ctx.db, 'fuzz back office', ['kitchen-admin'])).key;
  const operatorKey = (await createApiKey(ctx.db, 'fuzz terminal', ['kitchen-operator'])).key;
  const clients = new AuthClientStore(ctx.db, { vhost: '/', resourceServerId: 'rabbitmq' });
  const clientId = `${partner}-client`;
  await clients.ensure({ partner, clientId, queue: commandQueue });
  const authClient = { id: clientId, secret: await clients.rotateSecret(clientId) };

  const services = {} as Record<ServiceName, Service>;
  const amqpConn = await connect(vhost.url);
  const ch = await amqpConn.createChannel();
  ch.on('error', () => undefined);
  const commands = new Map<string, number>();
  const partnerAnswers = { on: true };
  const stack: FuzzStack = {
    ctx,
    vhost,
    idp,
    services,
    tenantId: `tenant-${randomBytes(4).toString('hex')}`,
    tenantToken: '',
    tokens: {} as Record<TokenKind, string>,
    adminKey,
    operatorKey,
    webhookKey: integration.webhookKey,
    integrationUuid: integration.uuid,
    warehouseSecret,
    partner,
    authClient,
    orderId: '',
    amqp: { conn: amqpConn, ch },
    commands,
    partnerAnswers,
    deadLetters: new Map(),
    secrets: () => [
      adminKey,
      operatorKey,
      integration.webhookKey,
      warehouseSecret,
      authClient.secret,
      TEST_KEY,
      allio.token,
      ...Object.values(stack.tokens),
    ],
    async ensureAlive(name) {
      const s = services[name];
      if (s.child.exitCode() === undefined && (await healthy(s.port))) return true;
      s.deaths++;
      // A dying process stops answering a moment before it exits: give it that moment.
      await Promise.race([s.child.exited, new Promise((r) => setTimeout(r, 1_000))]);
      s.obituaries.push(
        `${name} exit ${String(s.child.exitCode() ?? 'none (unresponsive)')}:\n${s.child.output().slice(-3000)}`,
      );
      await s.child.stop();
      const again = await startService(name, ENTRIES[name], { ...env });
      s.child = again.child;
      s.port = again.port;
      return false;
    },
    async close() {
      await Promise.all(Object.values(services).map((s) => s.child.stop()));
      await amqpConn.close().catch(() => undefined);
      await idp.close();
      await vhost.close();
      await ctx.close();
    },
  };
  try {
    for (const name of Object.keys(ENTRIES) as ServiceName[]) {
      services[name] = await startService(name, ENTRIES[name], env);
    }
    await playPartner(stack, commandQueue);
    await watchDeadLetters(stack);
    await seed(stack);
  } catch (e) {
    await stack.close();
    throw e;
  }
  return stack;
}

/** The partner's side of the queue: counts every command, and answers them while setting up. */
async function playPartner(s: FuzzStack, queue: string): Promise<void> {
  // A failed checkQueue closes its channel, so each look uses a channel of its own.
  await waitFor(
    async () => {
      const probe = await s.amqp.conn.createChannel();
      probe.on('error', () => undefined);
      const found = await probe.checkQueue(queue).then(
        () => true,
        () => false,
      );
      await probe.close().catch(() => undefined);
      return found;
    },
    15_000,
    'the partner command queue',
  );
  const ch = await s.amqp.conn.createChannel();
  await ch.consume(queue, (msg) => {
    if (!msg) return;
    const parsed = commandMessage.safeParse(JSON.parse(msg.content.toString()));
    const type = parsed.success ? parsed.data.type : 'unknown';
    s.commands.set(type, (s.commands.get(type) ?? 0) + 1);
    if (parsed.success && s.partnerAnswers.on) {
      ch.publish(
        REPLIES_EXCHANGE,
        s.partner,
        Buffer.from(JSON.stringify(buildReply(parsed.data, 'success'))),
        { contentType: 'application/json' },
      );
    }
    ch.ack(msg);
  });
}

/** Collects what lands in the dead-letter queues, so a case can see its message there and why. */
async function watchDeadLetters(s: FuzzStack): Promise<void> {
  const ch = await s.amqp.conn.createChannel();
  await assertStatusTopology(ch);
  for (const queue of [DEAD_LETTER_QUEUE, DEAD_QUEUE]) {
    await ch.consume(queue, (msg) => {
      if (!msg) return;
      const headers = (msg.properties.headers ?? {}) as Record<string, unknown>;
      const id = headers['x-fuzz-case'];
      if (typeof id === 'string') s.deadLetters.set(id, { queue, headers });
      ch.ack(msg);
    });
  }
}

/** A menu, stock, an active intercom subscription and an order: valid starting points to mutate. */
async function seed(s: FuzzStack): Promise<void> {
  const api = s.services.api.port;
  const day = 24 * 3600;
  s.tenantToken = await s.idp.issue(s.tenantId, { ttlSeconds: day });
  const forgedPayload = Buffer.from(
    JSON.stringify({
      sub: s.tenantId,
      aud: s.idp.audience,
      iss: s.idp.issuer,
      roles: ['kitchen-admin'],
    }),
  ).toString('base64url');
  s.tokens = {
    tenant: s.tenantToken,
    // A second tenant: it may disconnect and connect without touching the first one's subscription.
    tenantB: await s.idp.issue(`${s.tenantId}-b`, { ttlSeconds: day }),
    // Signed by the tenant IdP, claiming staff roles: a tenant must never get staff rights from it.
    staffClaims: await s.idp.issue(s.tenantId, {
      ttlSeconds: day,
      roles: ['tenant', 'kitchen-admin', 'kitchen-operator'],
    }),
    expired: await s.idp.issue(s.tenantId, { ttlSeconds: -600 }),
    wrongAudience: await s.idp.issue(s.tenantId, { ttlSeconds: day, audience: 'another-api' }),
    forged: `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${forgedPayload}.`,
  };
  for (const [dish, xml] of [
    ['borscht', BORSCHT],
    ['salad', SALAD],
  ] as const) {
    await call(api, 'PUT', `/v1/kitchen/tech-cards/${dish}`, {
      headers: { 'x-api-key': s.adminKey, 'content-type': 'application/xml' },
      body: xml,
    });
  }
  const expiresAt = new Date(Date.now() + 7 * 86_400_000).toISOString();
  for (const [ingredient, quantity] of [
    ['beet', 10_000_000],
    ['beef', 10_000_000],
    ['walnut', 10_000_000],
  ] as const) {
    const event = {
      type: 'stock.level',
      timestamp: new Date().toISOString(),
      data: { ingredient, quantity, unit: 'g', expiresAt },
    };
    const body = JSON.stringify(event);
    await call(api, 'POST', '/webhooks/warehouse', {
      headers: Object.fromEntries(warehouseHeaders(s.warehouseSecret, body)),
      body,
    });
    // The kitchen service applies stored events; it does not run here, so the stock is applied as it would.
    await s.ctx.db.transaction((trx) => applyEvent(trx, warehouseEvent.parse(event)));
  }
  const auth = { authorization: `Bearer ${s.tenantToken}`, 'content-type': 'application/json' };
  const order = await call(api, 'POST', '/v1/kitchen/orders', {
    headers: auth,
    body: JSON.stringify({ items: [{ dishId: 'borscht', quantity: 1 }] }),
  });
  s.orderId = String((order.order as { orderId: string }).orderId);
  await call(api, 'POST', '/v1/smart-home/subscriptions/intercom/connect', {
    headers: auth,
    body: JSON.stringify({
      personalData: { fullName: 'Fuzz Tenant', phone: '+15550100', apartment: '1' },
      biometricsConsent: true,
    }),
  });
  await waitFor(
    async () => {
      const subs = await call(api, 'GET', '/v1/smart-home/subscriptions', { headers: auth });
      return (subs.subscriptions as Array<{ service: string; state: string }>).some(
        (x) => x.service === 'intercom' && x.state === 'connected',
      );
    },
    20_000,
    'the intercom subscription to be connected',
  ).catch((e: unknown) => {
    throw new Error(
      `${String(e)}; partner saw ${JSON.stringify([...s.commands])}; mq-bridge said:\n${s.services.bridge.child.output().slice(-3000)}`,
    );
  });
  s.partnerAnswers.on = false;
  // The status consumer's topology, so that fuzzed events can be published before it is up.
  await assertStatusTopology(s.amqp.ch);
}
