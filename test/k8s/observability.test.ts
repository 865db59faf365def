// Alerts and autoscaling read metrics the services really export: the names come from every metrics
// factory in the code, and each service's live /metrics passes `promtool check metrics`. The
// dashboard is checked in dashboard.test.ts.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { parse as parseYaml } from 'yaml';
import { createVhost, type TestVhost } from '../support/amqp.js';
import {
  createTestContext,
  DATABASE_URL,
  REDIS_URL,
  waitFor,
  type TestContext,
} from '../support/context.js';
import { startFakeKube, type FakeKube } from '../support/fake-kube.js';
import { startServiceProcess, type ServiceProcess, expectCleanExit } from '../support/process.js';
import { metricCatalogue, seriesOf } from '../support/metric-catalogue.js';
import { PENDING_ENTRY_POINTS, PENDING_METRICS } from '../support/pending.js';
import { promtool, ROOT, run } from '../support/tools.js';

const CHART = path.join(ROOT, 'charts/integration-hub');

/** Every service the chart deploys whose entry point is in this tree: [name, entry source]. */
const SERVICES = Object.keys(
  (
    parseYaml(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')) as {
      services: Record<string, unknown>;
    }
  ).services,
)
  .filter((svc) => !PENDING_ENTRY_POINTS.includes(svc))
  .map((svc) => [svc, `services/${svc}/main.ts`] as const);

/** Metric names in a PromQL expression: our families and the Node process families. */
const metricsIn = (expr: string) => [
  ...new Set(expr.match(/\b(?:hub|process|nodejs)_[a-z0-9_]+\b/g) ?? []),
];

let exported: Set<string>;
let known: Set<string>;

beforeAll(async () => {
  const { metrics, factories } = await metricCatalogue();
  const names = new Set([...metrics.values()].flatMap(seriesOf));
  expect(factories).toEqual(
    expect.arrayContaining([
      'services/core/metrics.ts:createMetrics',
      'services/core/metrics.ts:collectProcessMetrics',
    ]),
  );
  exported = names;
  // A pending histogram is read through its _bucket/_sum/_count series.
  known = new Set([
    ...names,
    ...PENDING_METRICS.flatMap((m) => [m, `${m}_bucket`, `${m}_sum`, `${m}_count`]),
  ]);
});

describe('metric names', () => {
  test('pending metrics are not exported yet (remove them from the list once they are)', () => {
    expect(PENDING_METRICS.filter((m) => exported.has(m))).toEqual([]);
  });

  test('every alert expression and every prometheus-adapter rule names metrics the services export', async () => {
    const rules = parseYaml(await readFile(path.join(CHART, 'rules/alerts.yaml'), 'utf8')) as {
      groups: { rules: { alert: string; expr: string }[] }[];
    };
    const adapter = parseYaml(
      await readFile(path.join(ROOT, 'k8s/prometheus-adapter/values.yaml'), 'utf8'),
    ) as {
      rules: Record<string, { seriesQuery: string; metricsQuery: string }[] | boolean>;
    };
    const exprs = [
      ...rules.groups.flatMap((g) => g.rules.map((r) => ({ where: r.alert, expr: r.expr }))),
      ...Object.values(adapter.rules)
        .filter(Array.isArray)
        .flat()
        .flatMap((r) => [
          { where: 'adapter seriesQuery', expr: r.seriesQuery },
          { where: 'adapter metricsQuery', expr: r.metricsQuery },
        ]),
    ];
    for (const { where, expr } of exprs) {
      const names = metricsIn(expr).filter((n) => n !== 'hub_http_requests_per_second');
      expect({ where, unknown: names.filter((n) => !known.has(n)) }).toEqual({
        where,
        unknown: [],
      });
    }
  });
});

describe('live /metrics of each service', () => {
  let ctx: TestContext;
  let vhost: TestVhost;
  let kube: FakeKube;
  let kubeconfig: string;
  const running: ServiceProcess[] = [];

  beforeAll(async () => {
    ctx = await createTestContext('metricsexpo');
    vhost = await createVhost('metricsexpo');
    kube = await startFakeKube();
    const dir = await mkdtemp(path.join(tmpdir(), 'hub-kubeconfig-'));
    kubeconfig = path.join(dir, 'config');
    await writeFile(kubeconfig, kube.kubeConfig().exportConfig());
  });
  afterAll(async () => {
    for (const p of running) p.child.kill('SIGTERM');
    await Promise.all(running.map((p) => p.exited));
    await kube.close();
    await vhost.close();
    await ctx.close();
  });

  const freePort = () =>
    new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });

  /** Known findings of promtool on prom-client's own default metrics, which we do not name. */
  const PROM_CLIENT_DEFAULTS =
    /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/;

  test.each(SERVICES)(
    '%s serves /metrics that promtool check metrics accepts',
    async (_svc, entry) => {
      const port = await freePort();
      const p = startServiceProcess(entry, {
        PORT: String(port),
        LOG_LEVEL: 'warn',
        DATABASE_URL,
        DATABASE_SCHEMA: ctx.schema,
        REDIS_URL,
        REDIS_KEY_PREFIX: ctx.keyPrefix,
        AMQP_URL: vhost.url,
        WATCH_NAMESPACE: 'hub',
        POD_NAMESPACE: 'hub',
        KUBECONFIG: kubeconfig,
        DATA_ENCRYPTION_KEYS: `test:${Buffer.alloc(32, 7).toString('base64')}`,
        // Partners are not called while the services only start and serve /metrics.
        TENANT_JWT_ISSUER: 'https://id.test.example',
        TENANT_JWKS_URL: 'https://id.test.example/jwks',
        KITCHEN_PAYMENT_URL: 'https://gateway.test.example',
        KITCHEN_PAYMENT_API_KEY: 'merchant-test-key',
        KITCHEN_ROBOTS_URL: 'https://robots.test.example',
        KITCHEN_ROBOTS_API_KEY: 'robots-test-key',
        ONEC_ODATA_URL: 'https://onec.test.example/odata/standard.odata',
        ONEC_USER: 'exchange',
        ONEC_PASSWORD: 'secret-1c',
      });
      running.push(p);
      const url = `http://127.0.0.1:${port}`;
      await waitFor(
        async () => (await fetch(`${url}/readyz`)).status === 200,
        20_000,
        `${entry} ready (${p.output()})`,
      );
      const body = await (await fetch(`${url}/metrics`)).text();
      const r = await run(promtool(), ['check', 'metrics'], { input: body });
      const findings = `${r.stdout}${r.stderr}`
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
        .filter((l) => !PROM_CLIENT_DEFAULTS.test(l));
      expect(findings).toEqual([]);
      expect(body).toMatch(/^# TYPE hub_/m);
      p.child.kill('SIGTERM');
      await expectCleanExit(p);
    },
  );
});
