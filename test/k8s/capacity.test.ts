// What the chart's pods may ask of the cluster at most, from the rendered objects: PostgreSQL
// connections at every HPA maximum plus the rolling update's surge pod (within the server's
// max_connections, through PgBouncer where the values put one), each pod's V8 heap below its
// memory limit, and a stop that drains before the listener closes.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, test } from '@jest/globals';
import { parse as parseYaml } from 'yaml';
import { helm, ROOT, run } from '../support/tools.js';
import { CHART, PRODUCTION, renderChart } from '../support/chart.js';
import type { KubeObject } from '../support/kube-schemas.js';

type Env = {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
};
type Probe = {
  httpGet?: { path: string; port: string };
  periodSeconds?: number;
  failureThreshold?: number;
};
type Container = {
  env?: Env[];
  resources?: { limits?: { memory?: string } };
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  startupProbe?: Probe;
};
type PodSpec = { containers: Container[]; terminationGracePeriodSeconds?: number };
type Deployment = KubeObject & {
  spec: {
    replicas?: number;
    strategy?: { rollingUpdate?: { maxSurge?: number | string } };
    template: { spec: PodSpec };
  };
};
type Hpa = KubeObject & { spec: { scaleTargetRef: { name: string }; maxReplicas: number } };
type PostgresqlValues = {
  maxConnections: number;
  reservedConnections: number;
  pgbouncer: { enabled: boolean; serverConnections: number; maxClientConnections: number };
};

const readYaml = (file: string) => parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>;
/** The chart's `postgresql` values as helm merges them: the defaults overlaid by the file's. */
function postgresqlValues(file?: string): PostgresqlValues {
  const base = readYaml(path.join(CHART, 'values.yaml')).postgresql as PostgresqlValues;
  const over = (file ? readYaml(file).postgresql : undefined) as
    Partial<PostgresqlValues> | undefined;
  return { ...base, ...over, pgbouncer: { ...base.pgbouncer, ...over?.pgbouncer } };
}

const component = (o: KubeObject) => o.metadata.labels!['app.kubernetes.io/component']!;
const envOf = (c: Container) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e]));

/** LISTEN connections a process of `svc` opens: one per WorkListener its entry point starts. */
function listenersInCode(svc: string): number {
  const main = readFileSync(path.join(ROOT, `services/${svc}/main.ts`), 'utf8');
  return (main.match(/WorkListener\.fromConfig\(|new WorkListener\(/g) ?? []).length;
}

interface Row {
  service: string;
  pods: number;
  poolMax: number;
  pool: number;
  listen: number;
  sessionUrl: boolean;
}

/** One row per Deployment: pods at most (HPA maximum or replicas, plus the surge pod) and their connections. */
function connectionTable(objects: KubeObject[]): { rows: Row[]; migration: number } {
  const hpas = objects.filter((o) => o.kind === 'HorizontalPodAutoscaler') as Hpa[];
  const rows = (objects.filter((o) => o.kind === 'Deployment') as Deployment[]).map((d) => {
    const hpa = hpas.find((h) => h.spec.scaleTargetRef.name === d.metadata.name);
    const replicas = hpa ? hpa.spec.maxReplicas : (d.spec.replicas ?? 1);
    const pods =
      replicas > 0 ? replicas + Number(d.spec.strategy?.rollingUpdate?.maxSurge ?? 1) : 0;
    const env = envOf(d.spec.template.spec.containers[0]!);
    const poolMax = Number(env.DATABASE_POOL_MAX?.value);
    const service = component(d);
    return {
      service,
      pods,
      poolMax,
      pool: pods * poolMax,
      listen: pods * listenersInCode(service),
      sessionUrl: 'DATABASE_SESSION_URL' in env,
    };
  });
  const job = objects.find((o) => o.kind === 'Job') as
    (KubeObject & { spec: { template: { spec: PodSpec } } }) | undefined;
  const migration = job
    ? Number(envOf(job.spec.template.spec.containers[0]!).DATABASE_POOL_MAX?.value)
    : 0;
  return { rows, migration };
}

function printTable(
  label: string,
  t: { rows: Row[]; migration: number },
  pg: PostgresqlValues,
  sums: Record<string, number>,
): void {
  const lines = [
    `${label}: PostgreSQL connections at their most (max_connections ${pg.maxConnections}, reserved ${pg.reservedConnections}, PgBouncer ${pg.pgbouncer.enabled ? `on: ${pg.pgbouncer.serverConnections} server, ${pg.pgbouncer.maxClientConnections} clients` : 'off'})`,
    'service      pods  pool/pod  pool  LISTEN',
    ...t.rows.map(
      (r) =>
        `${r.service.padEnd(12)} ${String(r.pods).padStart(4)}  ${String(r.poolMax).padStart(8)}  ${String(r.pool).padStart(4)}  ${String(r.listen).padStart(6)}`,
    ),
    `${'migration'.padEnd(12)} ${'1'.padStart(4)}  ${String(t.migration).padStart(8)}  ${String(t.migration).padStart(4)}  ${'0'.padStart(6)}`,
    ...Object.entries(sums).map(([k, v]) => `${k}: ${v}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

let defaults: KubeObject[];
let production: KubeObject[];
beforeAll(async () => {
  defaults = await renderChart();
  production = await renderChart(['-f', PRODUCTION]);
}, 120_000);

describe('database connections', () => {
  test.each([
    ['default', undefined],
    ['production', PRODUCTION],
  ])(
    "the %s values fit PostgreSQL's max_connections at every HPA maximum plus the surge pod",
    (label, file) => {
      const objects = label === 'default' ? defaults : production;
      const pg = postgresqlValues(file);
      const t = connectionTable(objects);
      const pools = t.rows.reduce((n, r) => n + r.pool, 0) + t.migration;
      const listen = t.rows.reduce((n, r) => n + r.listen, 0);
      const budget = pg.maxConnections - pg.reservedConnections;
      const onPostgres = pg.pgbouncer.enabled
        ? pg.pgbouncer.serverConnections + listen
        : pools + listen;
      printTable(label, t, pg, {
        'pools (incl. migration)': pools,
        LISTEN: listen,
        'on PostgreSQL': onPostgres,
        'budget (max - reserved)': budget,
      });
      expect(t.rows.every((r) => Number.isInteger(r.poolMax) && r.poolMax >= 1)).toBe(true);
      expect(t.migration).toBeGreaterThanOrEqual(1);
      expect(onPostgres).toBeLessThanOrEqual(budget);
      if (pg.pgbouncer.enabled) {
        expect(pools).toBeLessThanOrEqual(pg.pgbouncer.maxClientConnections);
      }
      // LISTEN goes to PostgreSQL itself exactly where the pool goes through PgBouncer.
      for (const r of t.rows) {
        expect({ service: r.service, sessionUrl: r.sessionUrl }).toEqual({
          service: r.service,
          sessionUrl: pg.pgbouncer.enabled && r.listen > 0,
        });
      }
    },
  );

  test("the production values go through PgBouncer: without it they would need several times PostgreSQL's default, and the chart refuses them", async () => {
    const t = connectionTable(production);
    const direct = t.rows.reduce((n, r) => n + r.pool + r.listen, 0) + t.migration;
    expect(direct).toBeGreaterThan(postgresqlValues(PRODUCTION).maxConnections);
    const r = await run(await helm(), [
      'template',
      'hub',
      CHART,
      '-f',
      PRODUCTION,
      '--set',
      'postgresql.pgbouncer.enabled=false',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`the services may open ${direct} PostgreSQL connections`);
  });

  test('values over the budget are refused at render time, naming the sums', async () => {
    const bin = await helm();
    const cases: [string[], string][] = [
      [
        ['--set', 'services.api.autoscaling.maxReplicas=40'],
        'over postgresql.maxConnections (100) less postgresql.reservedConnections (10)',
      ],
      [
        ['-f', PRODUCTION, '--set', 'postgresql.pgbouncer.maxClientConnections=200'],
        'over postgresql.pgbouncer.maxClientConnections (200)',
      ],
      [
        ['-f', PRODUCTION, '--set', 'postgresql.pgbouncer.serverConnections=80'],
        "need 121 of PostgreSQL's connections",
      ],
    ];
    for (const [args, message] of cases) {
      const r = await run(bin, ['template', 'hub', CHART, ...args]);
      expect({ args, code: r.code, refused: r.stderr.includes(message) }).toEqual({
        args,
        code: 1,
        refused: true,
      });
    }
    // The old shared pool size is refused rather than silently ignored.
    const old = await run(bin, ['template', 'hub', CHART, '--set', 'config.databasePoolMax=20']);
    expect(old.code).not.toBe(0);
    expect(old.stderr).toContain('config.databasePoolMax');
  });

  test('each service declares the LISTEN connections its entry point opens', () => {
    type Services = Record<string, { database: { listenConnections: number } }>;
    const services = readYaml(path.join(CHART, 'values.yaml')).services as Services;
    const declared = Object.fromEntries(
      Object.entries(services).map(([svc, s]) => [svc, s.database.listenConnections]),
    );
    const inCode = Object.fromEntries(
      Object.keys(services).map((svc) => [svc, listenersInCode(svc)]),
    );
    expect(declared).toEqual(inCode);
    expect(inCode).toEqual({ api: 1, 'allio-sync': 1, 'mq-bridge': 1, kitchen: 1, operator: 0 });
  });

  test('with PgBouncer and inline (development) secrets the Secret carries DATABASE_SESSION_URL, which is required', async () => {
    const bin = await helm();
    const missing = await run(bin, [
      'template',
      'hub',
      CHART,
      '--set',
      'postgresql.pgbouncer.enabled=true',
    ]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain(
      'secrets.databaseSessionUrl (or secrets.existingSecret) is required',
    );
    const objects = await renderChart([
      '--set',
      'postgresql.pgbouncer.enabled=true',
      '--set',
      'secrets.databaseSessionUrl=postgres://hub:hub@postgresql:5432/hub',
    ]);
    const secret = objects.find(
      (o) => o.kind === 'Secret' && o.metadata.name === 'hub-integration-hub-connections',
    ) as KubeObject & { stringData: Record<string, string> };
    expect(secret.stringData.DATABASE_SESSION_URL).toBe('postgres://hub:hub@postgresql:5432/hub');
  });
});

/** A Kubernetes memory quantity in MiB (the chart's schema allows Mi and Gi). */
function mebibytes(q: string): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(q);
  if (!m) throw new Error(`unexpected memory quantity ${q}`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
}

describe('pods', () => {
  test.each([['default'], ['production']])(
    "with the %s values every service's V8 heap limit stays below its memory limit, with room for the rest of the process",
    (label) => {
      const objects = label === 'default' ? defaults : production;
      const rows: string[] = [];
      for (const d of objects.filter((o) => o.kind === 'Deployment') as Deployment[]) {
        const c = d.spec.template.spec.containers[0]!;
        const options = envOf(c).NODE_OPTIONS?.value ?? '';
        const heap = Number(/--max-old-space-size=(\d+)/.exec(options)?.[1]);
        const limit = mebibytes(c.resources?.limits?.memory ?? '');
        rows.push(`${component(d)}: heap ${heap} MiB of ${limit} MiB`);
        // Buffers, code, the young generation and native allocations live outside the old space.
        expect({
          svc: component(d),
          heap,
          fits: heap <= limit * 0.8 && limit - heap >= 64,
        }).toEqual({ svc: component(d), heap: expect.any(Number), fits: true });
        expect(options).toContain('--enable-source-maps');
      }
      process.stdout.write(`${label}: ${rows.join(', ')}\n`);
      // No shared heap size any more: a ConfigMap NODE_OPTIONS would be overridden per pod anyway.
      const cm = objects.find(
        (o) => o.kind === 'ConfigMap' && o.metadata.name === 'hub-integration-hub-config',
      ) as KubeObject & { data: Record<string, string> };
      expect(cm.data.NODE_OPTIONS).toBeUndefined();
    },
  );

  test('a shared NODE_OPTIONS is refused, and the heap follows a changed memory limit', async () => {
    const bin = await helm();
    for (const bad of [
      ['--set', 'config.extraEnv.NODE_OPTIONS=--max-old-space-size=384'],
      ['--set', 'services.api.env.NODE_OPTIONS=--max-old-space-size=384'],
    ]) {
      const r = await run(bin, ['template', 'hub', CHART, ...bad]);
      expect({ bad, code: r.code }).toEqual({ bad, code: 1 });
    }
    const objects = await renderChart(['--set', 'services.api.resources.limits.memory=1Gi']);
    const api = objects.find(
      (o) => o.kind === 'Deployment' && component(o) === 'api',
    ) as Deployment;
    expect(envOf(api.spec.template.spec.containers[0]!).NODE_OPTIONS?.value).toBe(
      '--enable-source-maps --max-old-space-size=768',
    );
  });

  test.each([['default'], ['production']])(
    'with the %s values every pod drains before SIGTERM, has the grace to finish its work, and a startup probe',
    (label) => {
      const objects = label === 'default' ? defaults : production;
      const cm = objects.find(
        (o) => o.kind === 'ConfigMap' && o.metadata.name === 'hub-integration-hub-config',
      ) as KubeObject & { data: Record<string, string> };
      const shutdownSeconds = Number(cm.data.SHUTDOWN_TIMEOUT_MS) / 1000;
      for (const d of objects.filter((o) => o.kind === 'Deployment') as Deployment[]) {
        const spec = d.spec.template.spec;
        const c = spec.containers[0]!;
        const command = c.lifecycle?.preStop?.exec?.command ?? [];
        expect(command[0]).toBe('/bin/sleep');
        const drain = Number(command[1]);
        expect(drain).toBeGreaterThanOrEqual(3);
        // The grace period counts from the deletion: the drain, then the in-flight budget, then closing.
        expect(spec.terminationGracePeriodSeconds).toBeGreaterThan(drain + shutdownSeconds);
        expect(c.startupProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
        // Start-up waits up to 5 s for PostgreSQL and 5 s for the LISTEN connection; 30 s covers both with room.
        expect(
          (c.startupProbe?.periodSeconds ?? 10) * (c.startupProbe?.failureThreshold ?? 3),
        ).toBeGreaterThanOrEqual(30);
      }
    },
  );

  test('the preStop command exists in the image: its runtime stage is a Debian image with coreutils', () => {
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const runtimeFrom = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]!).at(-1)!;
    expect(runtimeFrom).toMatch(/-(bookworm|trixie)(-slim)?$/);
  });
});
