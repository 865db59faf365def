// Fuzz targets over every HTTP route of the api: tenant REST (smart home, kitchen), both webhooks,
// probes and unknown paths. A case starts from a valid, authenticated request and mutates its
// credentials, path parameters, body, content type and headers, or drops the connection part-way.
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { BORSCHT } from '../../services/hub/demo-cards.js';
import type { Outcome, Target } from './engine.js';
import {
  contentType,
  FRAGMENTS,
  hostileBody,
  hostileHeaders,
  hostileString,
  pathParam,
  type HeaderAttack,
} from './inputs.js';
import { encodeRequest, exchange, type ResetPoint } from './raw-http.js';
import { TOKEN_KINDS, warehouseHeaders, type FuzzStack, type TokenKind } from './stack.js';

export type Cred = TokenKind | 'admin' | 'operator' | 'badKey' | 'none';
const CREDS: readonly Cred[] = [...TOKEN_KINDS, 'admin', 'operator', 'badKey', 'none'];
/** Credentials of a tenant token: whatever roles it claims, they never hold staff permissions. */
const TENANT_TOKENS: readonly Cred[] = ['tenant', 'tenantB', 'staffClaims'];

export interface RouteSpec {
  method: string;
  /** Path with `:name` parameters. */
  path: string;
  /** Valid values of each parameter, by name. */
  params?: (s: FuzzStack) => Record<string, string[]>;
  body?: (s: FuzzStack) => unknown;
  xml?: boolean;
  /** Credentials the route is meant for. */
  creds: readonly Cred[];
  /** Staff-only: a tenant token must never get a 2xx here. */
  staffOnly?: boolean;
  idempotencyKey?: boolean;
}

const TENANT: readonly Cred[] = ['tenant', 'tenantB'];
const orderParams = (s: FuzzStack) => ({ orderId: [s.orderId, randomUUID()] });
const dishParams = () => ({ dishId: ['borscht', 'salad', 'unknown-dish'] });
const serviceParams = () => ({ service: ['intercom', 'barrier'] });

export const KITCHEN_ROUTES: RouteSpec[] = [
  { method: 'GET', path: '/v1/kitchen/menu', creds: ['tenant', 'operator', 'admin'] },
  {
    method: 'POST',
    path: '/v1/kitchen/orders',
    creds: TENANT,
    idempotencyKey: true,
    body: () => ({
      items: [
        { dishId: 'borscht', quantity: 1 },
        { dishId: 'salad', quantity: 2 },
      ],
    }),
  },
  {
    method: 'POST',
    path: '/v1/kitchen/orders/:orderId/payment',
    creds: TENANT,
    params: orderParams,
    body: () => ({ cardToken: 'tok_visa_4242abcd' }),
  },
  {
    method: 'GET',
    path: '/v1/kitchen/orders/:orderId',
    creds: ['tenant', 'operator'],
    params: orderParams,
  },
  { method: 'GET', path: '/v1/kitchen/orders', creds: ['tenant', 'operator'] },
  {
    method: 'PUT',
    path: '/v1/kitchen/tech-cards/:dishId',
    creds: ['admin'],
    params: dishParams,
    xml: true,
    staffOnly: true,
  },
  {
    method: 'GET',
    path: '/v1/kitchen/tech-cards/:dishId',
    creds: ['admin', 'operator'],
    params: dishParams,
    staffOnly: true,
  },
  { method: 'GET', path: '/v1/kitchen/stock', creds: ['admin', 'operator'], staffOnly: true },
];

const personal = {
  personalData: {
    fullName: 'Ada Tenant',
    phone: '+1 555 0100',
    email: 'ada@example.org',
    apartment: '12B',
    vehiclePlate: 'AB123',
  },
  biometricsConsent: false,
};
export const SMART_HOME_ROUTES: RouteSpec[] = [
  { method: 'GET', path: '/v1/smart-home/subscriptions', creds: TENANT },
  {
    method: 'POST',
    path: '/v1/smart-home/subscriptions/:service/connect',
    creds: ['tenantB'],
    params: serviceParams,
    idempotencyKey: true,
    body: () => personal,
  },
  {
    method: 'POST',
    path: '/v1/smart-home/subscriptions/:service/disconnect',
    creds: ['tenantB'],
    params: serviceParams,
    idempotencyKey: true,
  },
  {
    method: 'POST',
    path: '/v1/smart-home/subscriptions/:service/open',
    creds: ['tenant'],
    params: serviceParams,
  },
  {
    method: 'GET',
    path: '/v1/smart-home/commands/:commandId',
    creds: TENANT,
    params: () => ({ commandId: [randomUUID()] }),
  },
];

export const ALLIO_ROUTES: RouteSpec[] = [
  {
    method: 'POST',
    path: '/webhooks/allio/:webhookKey',
    creds: ['none'],
    params: (s) => ({ webhookKey: [s.webhookKey] }),
    body: (s) => ({ uuid: s.integrationUuid, command: 'RESERVE_ADD', indexes: [101, '202', 303] }),
  },
];

export const WAREHOUSE_ROUTES: RouteSpec[] = [
  {
    method: 'POST',
    path: '/webhooks/warehouse',
    creds: ['none'],
    body: () => ({
      type: 'stock.receipt',
      timestamp: new Date().toISOString(),
      data: {
        ingredient: 'beet',
        quantity: 10,
        unit: 'g',
        expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
      },
    }),
  },
];

export const PROBE_ROUTES: RouteSpec[] = [
  { method: 'GET', path: '/healthz', creds: ['none'] },
  { method: 'GET', path: '/readyz', creds: ['none'] },
  { method: 'GET', path: '/metrics', creds: ['none'] },
  {
    method: 'GET',
    path: '/:unknown',
    creds: ['none'],
    params: () => ({
      unknown: ['', 'v1', 'v2/kitchen', 'webhooks', 'v1/events/x', 'admin', '.env', 'favicon.ico'],
    }),
  },
  {
    method: 'POST',
    path: '/v1/kitchen/:unknown',
    creds: ['tenant', 'admin'],
    params: () => ({ unknown: ['menu', 'orders/x/y', 'refunds', 'stock/1'] }),
    body: () => ({}),
  },
];

/** Technology cards as XML: the valid card, and what XML parsers are attacked with. */
const xmlBody: fc.Arbitrary<Buffer> = fc
  .oneof(
    { weight: 2, arbitrary: fc.constant(BORSCHT) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.integer({ min: 0, max: BORSCHT.length }), hostileString)
        .map(([i, s]) => `${BORSCHT.slice(0, i)}${s}${BORSCHT.slice(i)}`),
    },
    {
      weight: 1,
      arbitrary: fc.integer({ min: 0, max: BORSCHT.length }).map((n) => BORSCHT.slice(0, n)),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]><techCard dishId="borscht">&x;</techCard>',
        `<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">${Array.from({ length: 9 }, (_, i) => `<!ENTITY ${String.fromCharCode(98 + i)} "${`&${String.fromCharCode(97 + i)};`.repeat(10)}">`).join('')}]><techCard>&j;</techCard>`,
        '<?xml version="1.0"?><!DOCTYPE c [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x.dtd"> %p;]><techCard/>',
        '<techCard xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file:///etc/passwd" parse="text"/></techCard>',
      ),
    },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 100, max: 50_000 })
        .map((n) => `${'<a>'.repeat(n)}${'</a>'.repeat(n)}`),
    },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 70_000, max: 400_000 })
        .map((n) => `<techCard dishId="borscht">${'x'.repeat(n)}</techCard>`),
    },
  )
  .map((v) => Buffer.from(v, 'utf8'));

export interface HttpCase {
  route: string;
  method: string;
  path: string;
  cred: Cred;
  staffOnly: boolean;
  headers: Array<[string, string]>;
  body?: Buffer;
  lying: boolean;
  reset: ResetPoint;
}

const resetPoint: fc.Arbitrary<ResetPoint> = fc.oneof(
  { weight: 17, arbitrary: fc.constant<ResetPoint>({ at: 'never' }) },
  {
    weight: 1,
    arbitrary: fc
      .double({ min: 0.05, max: 0.95, noNaN: true })
      .map((fraction): ResetPoint => ({ at: 'mid-request', fraction })),
  },
  { weight: 1, arbitrary: fc.constant<ResetPoint>({ at: 'after-request' }) },
  { weight: 1, arbitrary: fc.constant<ResetPoint>({ at: 'after-answer-start' }) },
);

function credHeaders(s: FuzzStack, cred: Cred): Array<[string, string]> {
  if (cred === 'none') return [];
  if (cred === 'admin') return [['X-API-Key', s.adminKey]];
  if (cred === 'operator') return [['X-API-Key', s.operatorKey]];
  if (cred === 'badKey') return [['X-API-Key', `hk_${'a'.repeat(12)}_${'b'.repeat(40)}`]];
  return [['Authorization', `Bearer ${s.tokens[cred]}`]];
}

function fillPath(path: string, values: Record<string, string>): string {
  return path.replace(/:([A-Za-z]+)/g, (_m, name: string) => values[name] ?? '');
}

function routeCase(s: FuzzStack, r: RouteSpec): fc.Arbitrary<HttpCase> {
  const params = r.params?.(s) ?? {};
  const paramArb = fc.record(
    Object.fromEntries(Object.entries(params).map(([k, v]) => [k, pathParam(v)])) as Record<
      string,
      fc.Arbitrary<string>
    >,
  );
  const valid = r.body?.(s);
  const bodyArb: fc.Arbitrary<Buffer | undefined> = r.xml
    ? xmlBody
    : valid === undefined
      ? fc.oneof(
          { weight: 4, arbitrary: fc.constant(undefined) },
          { weight: 1, arbitrary: hostileBody({}) },
        )
      : fc.oneof(
          { weight: 1, arbitrary: fc.constant(Buffer.from(JSON.stringify(valid))) },
          { weight: 3, arbitrary: hostileBody(valid) },
        );
  // On staff routes a third of the cases try a tenant token, whatever roles it claims.
  const credArb = r.staffOnly
    ? fc.oneof(
        fc.constantFrom(...r.creds),
        fc.constantFrom(...TENANT_TOKENS),
        fc.constantFrom(...CREDS),
      )
    : fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(...r.creds) },
        { weight: 1, arbitrary: fc.constantFrom(...CREDS) },
      );
  const ctArb = r.xml
    ? fc.oneof(
        { weight: 4, arbitrary: fc.constant<string | undefined>('application/xml') },
        { weight: 1, arbitrary: contentType },
      )
    : contentType;
  const methodArb = fc.oneof(
    { weight: 12, arbitrary: fc.constant(r.method) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'GET',
        'POST',
        'PUT',
        'DELETE',
        'PATCH',
        'OPTIONS',
        'HEAD',
        'TRACE',
      ),
    },
  );
  const idemArb = r.idempotencyKey
    ? fc.option(
        fc.oneof(
          fc.uuid(),
          hostileString.filter(
            (x) => !/[\r\n]/.test(x) && !x.includes('\u0000') && x.length < 4000,
          ),
        ),
        { nil: undefined },
      )
    : fc.constant(undefined);
  return fc
    .record({
      params: paramArb,
      body: bodyArb,
      cred: credArb,
      ct: ctArb,
      method: methodArb,
      attack: hostileHeaders,
      reset: resetPoint,
      idem: idemArb,
    })
    .map(({ params: p, body, cred, ct, method, attack, reset, idem }): HttpCase => {
      const headers: Array<[string, string]> = [...credHeaders(s, cred)];
      if (body !== undefined && ct !== undefined) {
        headers.push(['Content-Type', ct.replace(/[\r\n]/g, '')]);
      }
      if (idem !== undefined) headers.push(['Idempotency-Key', idem.replace(/[^\x20-\xff]/g, '?')]);
      headers.push(...(attack as HeaderAttack).headers);
      return {
        route: `${r.method} ${r.path}`,
        method,
        path: fillPath(r.path, p),
        cred,
        staffOnly: r.staffOnly ?? false,
        headers,
        body,
        lying: attack.lying,
        reset,
      };
    });
}

export function httpTarget(
  name: string,
  routes: readonly RouteSpec[],
  prepare?: (s: FuzzStack, c: HttpCase) => HttpCase,
): Target<HttpCase> {
  return {
    name,
    services: ['api'],
    arbitrary: (s) => fc.oneof(...routes.map((r) => routeCase(s, r))),
    run: (s, c) => runHttpCase(s.services.api.port, prepare ? prepare(s, c) : c),
    describe: (c) =>
      `${c.method} ${c.path.slice(0, 200)} cred=${c.cred} reset=${JSON.stringify(c.reset)} headers=${JSON.stringify(c.headers.map(([k, v]) => [k, v.length > 100 ? `${v.slice(0, 60)}…(${v.length})` : v]))} body=${c.body ? `${c.body.length} bytes: ${c.body.subarray(0, 300).toString('utf8')}` : 'none'}`,
  };
}

export async function runHttpCase(port: number, c: HttpCase): Promise<Outcome> {
  const bytes = encodeRequest(
    { method: c.method, path: c.path, headers: c.headers, body: c.body },
    `127.0.0.1:${port}`,
  );
  const a = await exchange(port, bytes, { reset: c.reset, halfClose: c.lying });
  const violations: string[] = [];
  if (c.staffOnly && TENANT_TOKENS.includes(c.cred) && a.status >= 200 && a.status < 300) {
    violations.push(
      `a tenant token (${c.cred}) was granted a staff operation: ${c.method} ${c.path} answered ${a.status}`,
    );
  }
  // CONNECT-like refusals and resets legitimately end without an answer.
  return {
    status: a.status,
    silent: c.reset.at !== 'never' || c.lying,
    bodyBytes: a.body.length,
    violations,
    // A reset once the answer started, read before its status line, leaves a stored request unseen.
    mayHaveLanded:
      c.reset.at === 'after-request' ||
      c.lying ||
      (c.reset.at === 'after-answer-start' && a.status === 0),
  };
}

/** Warehouse cases are signed after mutation (so they reach the parser), except when the signature is the attack. */
function signWarehouse(s: FuzzStack, c: HttpCase): HttpCase {
  const body = c.body ?? Buffer.alloc(0);
  const i = body.length % 7;
  if (i === 0) return c; // unsigned
  const signed = warehouseHeaders(s.warehouseSecret, body, i === 1 ? { timestamp: 1 } : {}).filter(
    ([k]) => k !== 'content-type',
  );
  if (i === 2) {
    signed[0] = [
      'webhook-id',
      FRAGMENTS[body.length % FRAGMENTS.length]?.replace(/[\r\n]/g, '') ?? 'x',
    ];
  }
  return { ...c, headers: [...c.headers, ...signed] };
}

export const HTTP_TARGETS = [
  httpTarget('kitchen REST', KITCHEN_ROUTES),
  httpTarget('smart-home REST', SMART_HOME_ROUTES),
  httpTarget('ALLIO webhook', ALLIO_ROUTES),
  httpTarget('warehouse webhook', WAREHOUSE_ROUTES, signWarehouse),
  httpTarget('probes and unknown paths', PROBE_ROUTES),
];
