// The whole kitchen on real servers for one test file: its own schema, Redis prefix and RabbitMQ
// vhost, the four simulators, the API (kitchen routes and the status consumer) on a real port, and
// kitchen service replicas on demand.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { buildApi } from '../../services/api/app.js';
import { kitchenRoutes } from '../../services/api/kitchen/index.js';
import { startOrderStatusConsumer } from '../../services/api/kitchen/status-consumer.js';
import { statusRoute } from '../../services/domains/kitchen/status-events.js';
import { connectAmqp } from '../../services/core/amqp.js';
import { createApiKey } from '../../services/core/auth/api-keys.js';
import { WorkListener } from '../../services/core/engine/notify.js';
import { createMetrics, type Metrics } from '../../services/core/metrics.js';
import {
  orderStatusEventSchema,
  type OrderStatusTenantEvent,
  type TenantEvent,
} from '../../services/contracts/tenant-events.js';
import { TenantEventPublisher, TenantEventSubscriber } from '../../services/core/tenant-events.js';
import { loadConfig } from '../../services/core/config.js';
import { kitchenEnv } from '../../services/kitchen/config.js';
import { createKitchenMetrics } from '../../services/domains/kitchen/metrics.js';
import { createKitchen, type Kitchen } from '../../services/kitchen/service.js';
import { startOneCSimulator, type OneCSimulator } from '../../services/simulators/onec/server.js';
import {
  startPaymentGateway,
  type PaymentGatewaySimulator,
} from '../../services/simulators/payment-gateway/server.js';
import {
  startRobotsSimulator,
  type RobotsSimulator,
} from '../../services/simulators/robots/server.js';
import { selfSignedCertificate, type Certificate } from '../../services/simulators/tls.js';
import {
  startWarehouseSimulator,
  type WarehouseSimulator,
} from '../../services/simulators/warehouse/server.js';
import { createVhost, type TestVhost } from './amqp.js';
import {
  createTestContext,
  DATABASE_URL,
  REDIS_URL,
  waitFor,
  type TestContext,
} from './context.js';
import { track } from './leaks.js';
import { startIdentityProvider, type TestIdentityProvider } from './tenant-tokens.js';

export const GATEWAY_KEY = 'merchant-test-key';
export const ROBOTS_KEY = 'robots-test-key';
export const WAREHOUSE_SECRET = `whsec_${randomBytes(24).toString('base64')}`;
/** The secret being rotated in: the api accepts both while the warehouse moves over. */
export const WAREHOUSE_NEXT_SECRET = `whsec_${randomBytes(24).toString('base64')}`;

export interface Answer {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- test answers are read ad hoc
  text: string;
}

export interface KitchenStack {
  ctx: TestContext;
  vhost: TestVhost;
  idp: TestIdentityProvider;
  certificate: Certificate;
  gateway: PaymentGatewaySimulator;
  robots: RobotsSimulator;
  onec: OneCSimulator;
  warehouse: WarehouseSimulator;
  api: FastifyInstance;
  apiUrl: string;
  operatorKey: string;
  adminKey: string;
  /** `order.status` tenant events received, by tenant. */
  events: { tenantId: string; event: OrderStatusTenantEvent }[];
  watchTenant(tenantId: string): Promise<void>;
  /** Starts a kitchen replica (its own pool, metrics and AMQP connection); stopped by close(). */
  startKitchen(o?: {
    env?: Record<string, string>;
    now?: () => Date;
    start?: boolean;
    metrics?: Metrics;
  }): Promise<Kitchen>;
  call(
    method: string,
    path: string,
    o?: { token?: string; apiKey?: string; body?: unknown; headers?: Record<string, string> },
  ): Promise<Answer>;
  close(): Promise<void>;
}

export async function startKitchenStack(
  label: string,
  o: { cookMs?: number; hangMs?: number; installation?: string } = {},
): Promise<KitchenStack> {
  const ctx = await createTestContext(label);
  const vhost = await createVhost(label);
  const idp = await startIdentityProvider();
  const certificate = await selfSignedCertificate();
  const gateway = await startPaymentGateway({
    certificate,
    apiKey: GATEWAY_KEY,
    hangMs: o.hangMs ?? 1_500,
  });
  const robots = await startRobotsSimulator({
    apiKey: ROBOTS_KEY,
    cookMs: o.cookMs ?? 300,
    hangMs: o.hangMs ?? 1_500,
  });
  const onec = await startOneCSimulator({
    user: 'exchange',
    password: 'secret-1c',
    hangMs: o.hangMs ?? 1_500,
  });

  const api = buildApi({
    db: ctx.db,
    logger: ctx.logger,
    metrics: ctx.metrics,
    readiness: [],
    kitchen: kitchenRoutes({
      authenticator: idp.authenticator,
      warehouse: { secrets: [WAREHOUSE_SECRET, WAREHOUSE_NEXT_SECRET], toleranceSeconds: 300 },
    }),
  });
  const apiUrl = await api.listen({ port: 0, host: '127.0.0.1' });
  const warehouse = await startWarehouseSimulator({
    targetUrl: `${apiUrl}/webhooks/warehouse`,
    secret: WAREHOUSE_SECRET,
  });

  const apiAmqp = connectAmqp(vhost.url, ctx.logger, { name: 'test-api' });
  const consumer = startOrderStatusConsumer({
    route: statusRoute(o.installation),
    amqp: apiAmqp,
    publisher: new TenantEventPublisher<TenantEvent>(ctx.redis, ctx.keyPrefix),
    redis: ctx.redis,
    keyPrefix: ctx.keyPrefix,
    logger: ctx.logger,
    metrics: createKitchenMetrics(ctx.metrics.registry),
  });
  await consumer.waitForConnect();
  const events: KitchenStack['events'] = [];
  const subRedis = new Redis(REDIS_URL);
  const subscriber = new TenantEventSubscriber(
    subRedis,
    ctx.keyPrefix,
    ctx.logger,
    orderStatusEventSchema,
    (tenantId, event) => events.push({ tenantId, event }),
  );

  const operatorKey = (await createApiKey(ctx.db, 'kitchen terminal', ['kitchen-operator'])).key;
  const adminKey = (await createApiKey(ctx.db, 'back office', ['kitchen-admin'])).key;

  const replicas: { kitchen: Kitchen; stop(): Promise<void> }[] = [];
  const untrack = track(`kitchen stack ${label}`);

  return {
    ctx,
    vhost,
    idp,
    certificate,
    gateway,
    robots,
    onec,
    warehouse,
    api,
    apiUrl,
    operatorKey,
    adminKey,
    events,
    watchTenant: (tenantId) => subscriber.add(tenantId),
    async startKitchen(k = {}) {
      const config = loadConfig(kitchenEnv, {
        DATABASE_URL,
        DATABASE_SCHEMA: ctx.schema,
        AMQP_URL: vhost.url,
        KITCHEN_PAYMENT_URL: gateway.url,
        KITCHEN_PAYMENT_API_KEY: GATEWAY_KEY,
        KITCHEN_PAYMENT_TIMEOUT_MS: '500',
        KITCHEN_ROBOTS_URL: robots.url,
        KITCHEN_ROBOTS_API_KEY: ROBOTS_KEY,
        KITCHEN_ROBOTS_TIMEOUT_MS: '400',
        KITCHEN_ROBOTS_BACKOFF_MS: '50',
        KITCHEN_PRODUCTION_POLL_MS: '100',
        KITCHEN_LEASE_MS: '10000',
        ONEC_ODATA_URL: onec.url,
        ONEC_USER: 'exchange',
        ONEC_PASSWORD: 'secret-1c',
        ONEC_TIMEOUT_MS: '500',
        KITCHEN_ONEC_CATCHUP_HOURS: '6',
        // The robots and 1C simulators speak plain HTTP on 127.0.0.1.
        OUTBOUND_ALLOW_HTTP: 'true',
        ...(o.installation ? { HUB_INSTALLATION: o.installation } : {}),
        ...k.env,
      });
      const db = ctx.newDb();
      const amqp = connectAmqp(vhost.url, ctx.logger, { name: `test-kitchen-${replicas.length}` });
      const listener = new WorkListener(DATABASE_URL, ctx.schema, ctx.logger);
      const kitchen = createKitchen({
        db,
        config,
        paymentCa: certificate.cert,
        amqp,
        logger: ctx.logger,
        metrics: k.metrics ?? createMetrics(),
        listener,
        owner: `replica-${replicas.length}`,
        now: k.now,
        pollMaxMs: 200,
        schedulerIntervalMs: 60_000,
      });
      replicas.push({
        kitchen,
        stop: async () => {
          await kitchen.stop(2_000);
          await listener.stop();
          await amqp.close();
        },
      });
      if (k.start !== false) {
        await listener.start();
        await kitchen.start();
      }
      return kitchen;
    },
    async call(method, path, c = {}) {
      const headers: Record<string, string> = { ...c.headers };
      if (c.token) headers.authorization = `Bearer ${c.token}`;
      if (c.apiKey) headers['x-api-key'] = c.apiKey;
      let body: string | undefined;
      if (typeof c.body === 'string') body = c.body;
      else if (c.body !== undefined) {
        body = JSON.stringify(c.body);
        headers['content-type'] ??= 'application/json';
      }
      const res = await fetch(`${apiUrl}${path}`, { method, headers, body });
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      return { status: res.status, body: parsed, text };
    },
    async close() {
      for (const r of replicas) await r.stop();
      await consumer.close();
      await apiAmqp.close();
      subRedis.disconnect();
      await api.close();
      await Promise.all([
        gateway.close(),
        robots.close(),
        onec.close(),
        warehouse.close(),
        idp.close(),
      ]);
      await vhost.close();
      await ctx.close();
      untrack();
    },
  };
}

/** The demo menu through the API (as the back office) and stock through signed warehouse webhooks. */
export async function seedMenuAndStock(
  s: KitchenStack,
  stock: Record<string, number> = { beet: 5_000, beef: 5_000, walnut: 1_000 },
): Promise<void> {
  const { BORSCHT, SALAD } = await import('../../services/hub/demo-cards.js');
  for (const [dish, xml] of [
    ['borscht', BORSCHT],
    ['salad', SALAD],
  ] as const) {
    const r = await s.call('PUT', `/v1/kitchen/tech-cards/${dish}`, {
      apiKey: s.adminKey,
      body: xml,
      headers: { 'content-type': 'application/xml' },
    });
    if (r.status !== 200) throw new Error(`tech card ${dish} refused: ${r.text}`);
  }
  const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
  for (const [ingredient, quantity] of Object.entries(stock)) {
    const r = await s.warehouse.send('stock.level', { ingredient, quantity, unit: 'g', expiresAt });
    if (r.status !== 200) throw new Error(`stock level refused: ${JSON.stringify(r.body)}`);
  }
}

/** Waits until the kitchen (started) has applied the seeded stock: one row per ingredient. */
export async function stockApplied(s: KitchenStack, ingredients = 3): Promise<void> {
  await waitFor(
    async () =>
      Number((await s.ctx.db('kitchen_stock').count<{ c: string }[]>('* as c'))[0]?.c) ===
      ingredients,
    10_000,
    'stock applied',
  );
}

/** A tenant places an order and pays it with the gateway's test card; both answers are checked. */
export async function placePaidOrder(
  s: KitchenStack,
  tenant: string,
  items: { dishId: string; quantity: number }[],
): Promise<{ token: string; orderId: string; total: number }> {
  const token = await s.idp.token(tenant);
  const placed = await s.call('POST', '/v1/kitchen/orders', { token, body: { items } });
  if (placed.status !== 201) throw new Error(`order refused: ${placed.status} ${placed.text}`);
  const { orderId, totalMinor } = (
    placed.body as { order: { orderId: string; totalMinor: number } }
  ).order;
  const pay = await s.call('POST', `/v1/kitchen/orders/${orderId}/payment`, {
    token,
    body: { cardToken: s.gateway.tokenize('4111111111111111') },
  });
  if (pay.status !== 202) throw new Error(`payment refused: ${pay.status} ${pay.text}`);
  return { token, orderId, total: totalMinor };
}
