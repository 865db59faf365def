// docs/openapi.yaml is a valid OpenAPI 3.1 document, and every smart-home and kitchen route and
// webhook it documents is served by the api application (and every such route served is documented).
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyInstance } from 'fastify';
import { parse } from 'yaml';
import { buildApi } from '../services/api/app.js';
import { kitchenRoutes } from '../services/api/kitchen/index.js';
import { createLogger } from '../services/core/logger.js';
import { createMetrics } from '../services/core/metrics.js';
import { registerSmartHomeRoutes } from '../services/api/smart-home/routes.js';
import { decideTenantAction, SUBSCRIPTION_STATES } from '../services/domains/smart-home/domain.js';

const doc = parse(readFileSync(new URL('../docs/openapi.yaml', import.meta.url), 'utf8')) as {
  openapi: string;
  paths: Record<string, Record<string, unknown>>;
};
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];
let app: FastifyInstance;
const served: string[] = [];

beforeAll(async () => {
  app = buildApi({
    // Routes only: the database is never reached by this test.
    db: undefined as never,
    logger: createLogger({ level: 'silent' }),
    metrics: createMetrics(),
    readiness: [],
    kitchen: kitchenRoutes({
      authenticator: {
        verify: async () => {
          throw new Error('unused');
        },
      },
      warehouse: { secrets: [], toleranceSeconds: 300 },
    }),
    // Only the route table is read; no handler runs.
    tenant: {
      register: (a: FastifyInstance) =>
        registerSmartHomeRoutes(a, {
          db: undefined as never,
          authenticator: {
            verify: async () => {
              throw new Error('unused');
            },
          },
          cipher: undefined as never,
          events: undefined as never,
          commands: undefined as never,
        }),
    } as never,
  });
  await app.ready();
  // The route tree nests shared prefixes: `├── /v1/kitchen/orders (POST, GET)` then `│   └── /:orderId (GET)`.
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^([│ ]*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?/.exec(line);
    if (!m) continue;
    const depth = (m[1] ?? '').length / 4;
    const path = (stack[depth - 1] ?? '') + (m[2] ?? '');
    stack[depth] = path;
    for (const method of m[3]?.split(', ') ?? []) served.push(`${method.toLowerCase()} ${path}`);
  }
});
afterAll(async () => {
  await app.close();
});

const documented = () =>
  Object.entries(doc.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => m in item).map((m) => ({
      method: m,
      path,
      url: path.replace(/\{(\w+)\}/g, ':$1'),
    })),
  );

describe('OpenAPI document', () => {
  test('docs/openapi.yaml validates against the OpenAPI 3.1 schema', async () => {
    const result = await new Validator().validate(doc as unknown as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toBe('3.1.0');
  });

  test('every documented smart-home and kitchen route and webhook is served by the api application', () => {
    const ours = documented().filter((d) =>
      /^\/(v1\/kitchen|v1\/smart-home|webhooks)\//.test(d.path),
    );
    expect(ours.length).toBeGreaterThanOrEqual(14);
    for (const d of ours) {
      expect(
        `${d.method} ${d.path}: ${app.hasRoute({ method: d.method.toUpperCase() as 'GET', url: d.url })}`,
      ).toBe(`${d.method} ${d.path}: true`);
    }
  });

  test('every smart-home and kitchen route the api serves is documented', () => {
    const docs = new Set(documented().map((d) => `${d.method} ${d.url}`));
    const kitchen = served.filter((r) => r.includes('/v1/kitchen/') && !r.startsWith('head '));
    const smartHome = served.filter((r) => r.includes('/v1/smart-home/') && !r.startsWith('head '));
    expect(kitchen.length).toBeGreaterThanOrEqual(8);
    expect(smartHome.length).toBe(5);
    expect([...kitchen, ...smartHome].filter((r) => !docs.has(r))).toEqual([]);
  });

  test('every refusal an open can answer is documented on the open route under its status', () => {
    const open = (
      doc.paths['/v1/smart-home/subscriptions/{service}/open'] as {
        post: { responses: Record<string, { description?: string }> };
      }
    ).post.responses;
    const refusals = new Set(
      [undefined, ...SUBSCRIPTION_STATES].flatMap((state) => {
        const d = decideTenantAction(state, 'open');
        return d.allowed ? [] : [`409 ${d.refusal.code}`];
      }),
    );
    // The route's own refusal when the command cannot be handed to the broker (routes.ts).
    refusals.add('503 command_not_sent');
    expect(refusals.size).toBe(3);
    for (const r of refusals) {
      const [status, code] = r.split(' ') as [string, string];
      expect(`${r}: ${open[status]?.description?.includes(`\`${code}\``) ?? false}`).toBe(
        `${r}: true`,
      );
    }
  });
});
