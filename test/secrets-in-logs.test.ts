// Secrets never reach a log line: the api (with the kitchen), mq-bridge, auth, kitchen and
// allio-sync run from their built entry points at LOG_LEVEL=trace, with passwords in their
// PostgreSQL, Redis and RabbitMQ URLs; a representative flow uses every credential (webhook key,
// ALLIO token, API keys, tenant tokens in headers and in the WebSocket query, a warehouse secret, a
// card token paid with the gateway's API key, robots and 1C credentials, a partner's client secret
// and the access token it gets), then every line each process wrote is searched for every one.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';
import { startAllioSimulator, type AllioSimulator } from '../services/simulators/allio/server.js';
import { startOneCSimulator, type OneCSimulator } from '../services/simulators/onec/server.js';
import {
  startPaymentGateway,
  type PaymentGatewaySimulator,
} from '../services/simulators/payment-gateway/server.js';
import {
  startRobotsSimulator,
  type RobotsSimulator,
} from '../services/simulators/robots/server.js';
import { selfSignedCertificate } from '../services/simulators/tls.js';
import { DATABASE_URL, REDIS_URL, waitFor } from './support/context.js';
import { ensureBuilt } from './fuzz/child.js';
import { startFuzzStack, startService, type FuzzStack } from './fuzz/stack.js';

const run = promisify(execFile);
const secret = (label: string) => `${label}${randomBytes(12).toString('hex')}`;
const S = {
  dbPassword: secret('dbpw'),
  redisPassword: secret('redispw'),
  amqpPassword: secret('amqppw'),
  amqpUser: secret('hubuser'),
  allioToken: secret('allio'),
  paymentKey: secret('paykey'),
  robotsKey: secret('robokey'),
  onecPassword: secret('onecpw'),
};

const withPassword = (url: string, user: string | undefined, password: string) => {
  const u = new URL(url);
  if (user !== undefined) u.username = user;
  u.password = password;
  return u.toString();
};

let stack: FuzzStack;
let allio: AllioSimulator;
let gateway: PaymentGatewaySimulator;
let robots: RobotsSimulator;
let onec: OneCSimulator;
let caDir: string;
let amqpUrl = '';
let urls: Record<string, string> = {};
const workers: Array<Awaited<ReturnType<typeof startService>>> = [];

beforeAll(async () => {
  ensureBuilt(['dist/services/kitchen/main.js', 'dist/services/allio-sync/main.js']);
  const certificate = await selfSignedCertificate();
  allio = await startAllioSimulator({ token: S.allioToken });
  gateway = await startPaymentGateway({ certificate, apiKey: S.paymentKey, hangMs: 500 });
  robots = await startRobotsSimulator({ apiKey: S.robotsKey, cookMs: 200 });
  onec = await startOneCSimulator({ user: 'exchange', password: S.onecPassword });
  caDir = await mkdtemp(path.join(tmpdir(), 'hub-secrets-'));
  await writeFile(path.join(caDir, 'ca.pem'), certificate.cert);
  await run('rabbitmqctl', ['add_user', S.amqpUser, S.amqpPassword]);
  urls = {
    DATABASE_URL: withPassword(DATABASE_URL, undefined, S.dbPassword),
    REDIS_URL: withPassword(REDIS_URL, '', S.redisPassword),
  };
  stack = await startFuzzStack({
    label: 'secrets',
    logLevel: 'trace',
    allio: { baseUrl: allio.url, token: S.allioToken },
    childEnv: async (vhost) => {
      await run('rabbitmqctl', [
        'set_permissions',
        '-p',
        vhost.vhost,
        S.amqpUser,
        '.*',
        '.*',
        '.*',
      ]);
      amqpUrl = withPassword(vhost.url, S.amqpUser, S.amqpPassword);
      return { ...urls, AMQP_URL: amqpUrl };
    },
  }).catch(async (e: unknown) => {
    await run('rabbitmqctl', ['delete_user', S.amqpUser]);
    throw e;
  });
}, 120_000);

afterAll(async () => {
  await Promise.all(workers.map((w) => w.child.stop()));
  await stack?.close();
  await run('rabbitmqctl', ['delete_user', S.amqpUser]).catch(() => undefined);
  await Promise.all([allio?.close(), gateway?.close(), robots?.close(), onec?.close()]);
  if (caDir) await rm(caDir, { recursive: true, force: true });
}, 60_000);

/** Every secret, and the parts of tokens and keys that identify them on their own. */
function secretsToFind(extra: string[]): string[] {
  const all = [...stack.secrets(), ...Object.values(S).filter((v) => v !== S.amqpUser), ...extra];
  const parts = all.flatMap((v) => [
    /^hk_[a-z0-9]{12}_(.+)$/.exec(v)?.[1],
    /^[\w-]+\.[\w-]+\.([\w-]{16,})$/.exec(v)?.[1],
    /^whsec_(.+)$/.exec(v)?.[1],
  ]);
  return [
    ...new Set(
      [...all, ...parts].filter((v): v is string => typeof v === 'string' && v.length >= 8),
    ),
  ];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the flow reads fields of several routes' answers loosely
type LooseAnswer = Record<string, any>;

async function api(
  method: string,
  p: string,
  o: { token?: string; apiKey?: string; body?: unknown } = {},
) {
  const headers: Record<string, string> = {};
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (o.apiKey) headers['x-api-key'] = o.apiKey;
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`http://127.0.0.1:${stack.services.api.port}${p}`, {
    method,
    headers,
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  return { status: res.status, body: (await res.json().catch(() => ({}))) as LooseAnswer };
}

test('no secret, key, token or password appears in any log line of a full run at trace level', async () => {
  // The partner simulators speak plain HTTP: the development switch lets the services call them.
  const base = {
    ...urls,
    AMQP_URL: amqpUrl,
    DATABASE_SCHEMA: stack.ctx.schema,
    REDIS_KEY_PREFIX: stack.ctx.keyPrefix,
    LOG_LEVEL: 'trace',
    OUTBOUND_ALLOW_HTTP: 'true',
  };
  workers.push(
    await startService('kitchen', 'dist/services/kitchen/main.js', {
      ...base,
      KITCHEN_PAYMENT_URL: gateway.url,
      KITCHEN_PAYMENT_API_KEY: S.paymentKey,
      KITCHEN_PAYMENT_CA_FILE: path.join(caDir, 'ca.pem'),
      KITCHEN_PAYMENT_TIMEOUT_MS: '2000',
      KITCHEN_ROBOTS_URL: robots.url,
      KITCHEN_ROBOTS_API_KEY: S.robotsKey,
      KITCHEN_PRODUCTION_POLL_MS: '200',
      ONEC_ODATA_URL: onec.url,
      ONEC_USER: 'exchange',
      ONEC_PASSWORD: S.onecPassword,
    }),
  );
  workers.push(await startService('allio-sync', 'dist/services/allio-sync/main.js', base));
  const tenant = stack.tokens.tenant;

  // ALLIO: the webhook with its key, then allio-sync calls the ALLIO API with the integration's token.
  const hook = await fetch(
    `http://127.0.0.1:${stack.services.api.port}/webhooks/allio/${stack.webhookKey}`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        uuid: stack.integrationUuid,
        command: 'RESERVE_ADD',
        indexes: [1, 2, 3],
      }),
    },
  );
  expect(hook.status).toBe(200);
  await waitFor(
    async () =>
      (await stack.ctx.db('crm_reservations').count<{ n: string }[]>('* as n'))[0]?.n !== '0',
    30_000,
    'ALLIO records in the CRM',
  );

  // Kitchen: a tenant pays with a gateway card token; the kitchen charges it with its API key and cooks.
  const cardToken = gateway.tokenize('4111111111111111');
  expect(
    (
      await api('POST', `/v1/kitchen/orders/${stack.orderId}/payment`, {
        token: tenant,
        body: { cardToken },
      })
    ).status,
  ).toBe(202);
  await waitFor(
    async () =>
      ['paid', 'in_production', 'produced'].includes(
        (await api('GET', `/v1/kitchen/orders/${stack.orderId}`, { token: tenant })).body.order
          ?.state,
      ),
    30_000,
    'the order to be paid',
  );
  expect((await api('GET', '/v1/kitchen/orders', { apiKey: stack.operatorKey })).status).toBe(200);
  expect((await api('GET', '/v1/kitchen/stock', { apiKey: stack.adminKey })).status).toBe(200);
  for (const bad of [stack.tokens.expired, stack.tokens.forged, stack.tokens.wrongAudience]) {
    expect((await api('GET', '/v1/kitchen/menu', { token: bad })).status).toBe(401);
  }

  // Smart home: the WebSocket with the token in its query (as browsers send it), and an open command answered by the partner.
  const ws = new WebSocket(
    `ws://127.0.0.1:${stack.services.api.port}/v1/events?access_token=${encodeURIComponent(tenant)}`,
  );
  ws.on('error', () => undefined);
  const events: string[] = [];
  ws.on('message', (m) => events.push(String(m)));
  await waitFor(() => events.some((e) => e.includes('"ready"')), 10_000, 'the socket to be ready');
  stack.partnerAnswers.on = true;
  const open = await api('POST', '/v1/smart-home/subscriptions/intercom/open', { token: tenant });
  expect(open.status).toBe(202);
  await waitFor(
    async () =>
      (await api('GET', `/v1/smart-home/commands/${open.body.commandId}`, { token: tenant })).body
        .status === 'opened',
    10_000,
    'the door to open',
  );
  ws.close();

  // A partner's token request at the authorization server, and one with a wrong secret.
  const tokenRequest = (secretValue: string) =>
    fetch(`http://127.0.0.1:${stack.services.auth.port}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${stack.authClient.id}:${secretValue}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'grant_type=client_credentials',
    });
  const granted = await tokenRequest(stack.authClient.secret);
  expect(granted.status).toBe(200);
  const accessToken = String(((await granted.json()) as { access_token: string }).access_token);
  expect((await tokenRequest(`${stack.authClient.secret}x`)).status).toBe(401);

  // Stop everything so that every buffered line is written, then read every line of every process.
  await Promise.all([
    ...workers.map((w) => w.child.stop()),
    ...Object.values(stack.services).map((x) => x.child.stop()),
  ]);
  const outputs = [...workers, ...Object.values(stack.services)].map((x) => ({
    name: x.name,
    text: x.child.output(),
  }));
  const lines = outputs.flatMap((o) => o.text.split('\n').map((line) => ({ name: o.name, line })));
  // The run was logged at trace level: request lines of every service are there to search.
  expect(lines.filter((l) => /"level":"(trace|debug)"/.test(l.line)).length).toBeGreaterThan(0);
  expect(lines.some((l) => l.line.includes('/webhooks/allio/[redacted]'))).toBe(true);

  const found = secretsToFind([cardToken, accessToken]).flatMap((value) =>
    lines
      .filter((l) => l.line.includes(value))
      .map(
        (l) => `${l.name}: ${l.line.replaceAll(value, `<<${value.slice(0, 6)}…>>`).slice(0, 600)}`,
      ),
  );
  expect(found).toEqual([]);
}, 180_000);
