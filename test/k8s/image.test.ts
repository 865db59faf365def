// The production image, built from the Dockerfile with podman/buildah and run as the chart runs its
// pods (read-only root, user 10001, no capabilities, no-new-privileges, tmpfs /tmp) against the
// machine's PostgreSQL, Redis and RabbitMQ: the migration Job's command, the api to /readyz, an
// ALLIO webhook through the api and allio-sync to a CRM row, every worker entry point ready, the
// chart's helm test command, and SIGTERM ending each with exit code 0. The operator runs against
// test/support/fake-kube.ts (there is no Kubernetes API here): it takes its Lease and applies a
// SmartHomePartner from it, which is what its health means in a cluster.
// Heavy dependencies a service does not use are hidden from it (an empty tmpfs over their
// directory): a service that still loaded one would not start.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Redis } from 'ioredis';
import { parse as parseYaml } from 'yaml';
import { createDb, type Db } from '../../services/core/db.js';
import { markRateLimitEpoch } from '../../services/core/ratelimit/limiter.js';
import { API_VERSION as PARTNER_API_VERSION } from '../../services/core/resource.js';
import {
  startAllioSimulator,
  type AllioSimulator,
} from '../../services/simulators/allio/server.js';
import { addIntegration } from '../support/allio.js';
import { createVhost, type TestVhost } from '../support/amqp.js';
import { DATABASE_URL, REDIS_URL, uniqueName, waitFor } from '../support/context.js';
import { startFakeKube, type FakeKube } from '../support/fake-kube.js';
import {
  buildImage,
  ensureBase,
  freePort,
  imageTools,
  POD_SECURITY,
  readableDir,
  type ImageTools,
} from '../support/image.js';
import { ROOT } from '../support/tools.js';

const IMAGE = 'localhost/integration-hub:image-test';
const NS = 'hub';
// Measured on the 2-core CI machine: the base stand-in 149 s (once per Debian release and Node
// version), a build with no npm cache 171 s, a build after a source change 55-190 s under load (the
// npm ci layers cached); the first build through a slow registry proxy took 11 min.
const BUILD_TIMEOUT_MS = 40 * 60_000;
const START_TIMEOUT_MS = 120_000;
/** Largest part the Dockerfile may add to its base: 187 MB today (node_modules 123 MB). */
const MAX_APP_MB = 200;

type Service = 'api' | 'allio-sync' | 'mq-bridge' | 'kitchen' | 'operator' | 'auth';
/** The chart's Deployments, and the development authorization server the same image carries. */
const CHART_SERVICES: Service[] = ['api', 'allio-sync', 'mq-bridge', 'kitchen', 'operator'];
const SERVICES: Service[] = [...CHART_SERVICES, 'auth'];
/** Packages only some services load; the others start with these directories hidden. */
const ONLY_IN: Record<string, Service[]> = {
  'node_modules/oidc-provider': ['auth'],
  'node_modules/@kubernetes/client-node': ['operator'],
  'node_modules/protobufjs': ['kitchen'],
  'node_modules/xmllint-wasm': ['kitchen'],
  // The kitchen's Protobuf schema: the api reads it only with KITCHEN_API=true.
  'dist/proto': ['kitchen'],
};

const log = (line: string) => process.stdout.write(`${line}\n`);
let t: ImageTools;
let values: {
  services: Record<string, { entryPoint: string }>;
  podSecurityContext: { runAsUser: number; runAsGroup: number };
};
let schema: string;
let keyPrefix: string;
let db: Db;
let redis: Redis;
let vhost: TestVhost;
let allio: AllioSimulator;
let kube: FakeKube;
const containers: string[] = [];
const ports = {} as Record<Service, number>;
let sizes: { image: number; base: number };

beforeAll(async () => {
  values = parseYaml(
    await readFile(path.join(ROOT, 'charts/integration-hub/values.yaml'), 'utf8'),
  ) as typeof values;
  t = await imageTools();
  const started = Date.now();
  const base = await ensureBase(t, log);
  const built = Date.now();
  await buildImage(t, IMAGE);
  const inspect = async (ref: string) =>
    Number((await t.podman(['image', 'inspect', '--format', '{{.Size}}', ref])).stdout.trim());
  sizes = { image: await inspect(IMAGE), base: await inspect(t.base.tag) };
  log(
    `image: ${IMAGE} ${mb(sizes.image)} MB (base ${t.base.tag} ${mb(sizes.base)} MB, ${base}; the Dockerfile adds ${mb(sizes.image - sizes.base)} MB); ` +
      `base ${((built - started) / 1000).toFixed(0)} s, podman build ${((Date.now() - built) / 1000).toFixed(0)} s`,
  );

  schema = uniqueName('t_image');
  keyPrefix = `test:${schema}:`;
  db = createDb({ DATABASE_URL, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: 2 });
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  await markRateLimitEpoch(redis, keyPrefix);
  vhost = await createVhost('image');
  allio = await startAllioSimulator({ token: 'image-test-token' });
  kube = await startFakeKube();
  for (const s of SERVICES) ports[s] = await freePort();
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  if (containers.length > 0) await t.podman(['rm', '--force', '--time', '0', ...containers]);
  await allio?.close();
  await kube?.close();
  await vhost?.close();
  if (db) {
    await db.raw(`drop schema if exists "${schema}" cascade`);
    await db.destroy();
  }
  if (redis) {
    const keys = await redis.keys(`${keyPrefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  }
  await t?.close();
}, 120_000);

const mb = (bytes: number) => Math.round(bytes / 1_000_000);

function common(name: string): Record<string, string> {
  return {
    DATABASE_URL,
    DATABASE_SCHEMA: schema,
    DATABASE_POOL_MAX: '3',
    REDIS_URL,
    REDIS_KEY_PREFIX: keyPrefix,
    LOG_LEVEL: 'info',
    SHUTDOWN_TIMEOUT_MS: '10000',
    INSTANCE_ID: name,
  };
}

async function envOf(s: Service): Promise<Record<string, string>> {
  const own = { ...common(`image-${s}`), PORT: String(ports[s]) };
  const amqp = { AMQP_URL: vhost.url };
  const dataKeys = { DATA_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}` };
  const closed = 'http://127.0.0.1:9';
  switch (s) {
    case 'api':
      return {
        ...own,
        ...amqp,
        ...dataKeys,
        HTTP_BODY_LIMIT_BYTES: '262144',
        WS_MAX_BUFFERED_BYTES: '262144',
        TENANT_JWT_ISSUER: `${closed}/realms/tenants`,
        TENANT_JWKS_URL: `${closed}/jwks`,
        TENANT_JWT_AUDIENCE: 'integration-hub',
      };
    case 'allio-sync':
      // The ALLIO simulator speaks plain HTTP on 127.0.0.1: the development switch allows it.
      return { ...own, EGRESS_IP: 'default', OUTBOUND_ALLOW_HTTP: 'true' };
    case 'mq-bridge':
      return { ...own, ...amqp, ...dataKeys };
    case 'kitchen':
      // Its partners are not needed to be ready: their calls fail and are retried.
      return {
        ...own,
        ...amqp,
        OUTBOUND_ALLOW_HTTP: 'true',
        KITCHEN_PAYMENT_URL: 'https://127.0.0.1:9',
        KITCHEN_PAYMENT_API_KEY: 'merchant-image-key',
        KITCHEN_ROBOTS_URL: closed,
        KITCHEN_ROBOTS_API_KEY: 'robots-image-key',
        ONEC_ODATA_URL: closed,
        ONEC_USER: 'exchange',
        ONEC_PASSWORD: 'secret-1c',
      };
    case 'operator': {
      const dir = await readableDir(t, 'kube');
      const kc = kube.kubeConfig();
      await writeFile(path.join(dir, 'config'), kc.exportConfig(), { mode: 0o644 });
      return {
        ...own,
        ...amqp,
        WATCH_NAMESPACE: NS,
        POD_NAMESPACE: NS,
        KUBECONFIG: '/var/run/kube/config',
      };
    }
    case 'auth':
      return { ...own, AUTH_ISSUER: `http://127.0.0.1:${ports.auth}` };
  }
}

/** `podman run` as the chart runs a pod of `service` (hidden: what it must not load). */
function podArgs(
  name: string,
  env: Record<string, string>,
  service: Service | 'migrate',
  extra: string[] = [],
): string[] {
  const hidden = Object.entries(ONLY_IN)
    .filter(([, users]) => !users.includes(service as Service))
    .map(([dir]) => dir);
  return [
    '--name',
    name,
    '--runtime',
    'runc',
    '--network',
    'host',
    ...POD_SECURITY,
    // notmpcopyup: an empty directory (podman would copy the image's files into the tmpfs).
    ...hidden.flatMap((dir) => ['--mount', `type=tmpfs,destination=/app/${dir},notmpcopyup`]),
    ...Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    ...extra,
  ];
}

async function get(port: number, p: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

async function logsOf(name: string): Promise<string> {
  const r = await t.podman(['logs', '--tail', '30', name]);
  return (r.stdout + r.stderr).slice(-3000);
}

async function startPod(s: Service): Promise<void> {
  const name = `hub-image-${s}-${schema.slice(-6)}`;
  const extra =
    s === 'operator' ? ['--volume', `${path.join(t.dir, 'kube')}:/var/run/kube:ro`] : [];
  const entryPoint = s === 'auth' ? 'dist/services/auth/main.js' : values.services[s]!.entryPoint;
  const r = await t.podman([
    'run',
    '--detach',
    ...podArgs(name, await envOf(s), s, extra),
    IMAGE,
    entryPoint,
  ]);
  if (r.code !== 0) throw new Error(`podman run ${s} exited ${r.code}: ${r.stderr}`);
  containers.push(name);
  await waitFor(
    async () => {
      const state = (
        await t.podman(['inspect', '--format', '{{.State.Running}}', name])
      ).stdout.trim();
      if (state !== 'true') throw new Error(`${s} is not running:\n${await logsOf(name)}`);
      return (await get(ports[s], '/readyz').catch(() => ({ status: 0 }))).status === 200;
    },
    START_TIMEOUT_MS,
    `${s} ready`,
  ).catch(async (e: unknown) => {
    throw new Error(`${String(e)}\n${await logsOf(name)}`);
  });
}

describe('image', () => {
  test("it runs as the unprivileged user the chart's pod security context names, through tini and node", async () => {
    const dockerfile = await readFile(path.join(ROOT, 'Dockerfile'), 'utf8');
    const user = /^USER (\d+):(\d+)$/m.exec(dockerfile);
    expect(user?.slice(1).map(Number)).toEqual([
      values.podSecurityContext.runAsUser,
      values.podSecurityContext.runAsGroup,
    ]);
    const config = JSON.parse(
      (await t.podman(['image', 'inspect', '--format', '{{json .Config}}', IMAGE])).stdout,
    ) as { User: string; Entrypoint: string[] };
    expect(config).toEqual(
      expect.objectContaining({ User: '10001:10001', Entrypoint: ['/usr/bin/tini', '--', 'node'] }),
    );
  });

  test("it holds production dependencies and the chart's entry points only, and stays small", async () => {
    // Packages only the development tools need (the lockfile marks them dev).
    const lock = JSON.parse(await readFile(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages)
      .filter(([p, v]) => v.dev && p.startsWith('node_modules/'))
      .map(([p]) => p);
    expect(devOnly).toEqual(
      expect.arrayContaining(['node_modules/typescript', 'node_modules/jest']),
    );
    const check = `const fs=require('fs');console.log(JSON.stringify({dev:${JSON.stringify(devOnly)}.filter((d)=>fs.existsSync(d)),services:fs.readdirSync('dist/services').sort(),domains:fs.readdirSync('dist/services/domains').sort(),top:fs.readdirSync('dist').sort()}))`;
    const r = await t.podman([
      'run',
      '--rm',
      ...podArgs(`hub-image-ls-${schema.slice(-6)}`, {}, 'migrate'),
      IMAGE,
      '-e',
      check,
    ]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      dev: [],
      // The deployables with the layers below them; no hub, no simulators.
      services: [
        'allio-sync',
        'api',
        'auth',
        'cli',
        'contracts',
        'core',
        'domains',
        'kitchen',
        'mq-bridge',
        'operator',
      ],
      domains: ['allio', 'kitchen', 'partner-access', 'smart-home'],
      top: ['proto', 'services'],
    });
    expect(mb(sizes.image - sizes.base)).toBeLessThan(MAX_APP_MB);
  });

  test('a service that loads a package hidden from it does not start: the api with the kitchen on', async () => {
    const env = {
      ...(await envOf('api')),
      KITCHEN_API: 'true',
      KITCHEN_WAREHOUSE_WEBHOOK_SECRETS: `whsec_${randomBytes(24).toString('base64')}`,
    };
    const r = await t.podman([
      'run',
      '--rm',
      ...podArgs(`hub-image-kitchen-api-${schema.slice(-6)}`, env, 'api'),
      IMAGE,
      values.services.api!.entryPoint,
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/protobufjs|xmllint-wasm|order_status\.proto/);
  }, 120_000);

  test("the migration Job's command migrates the schema as the chart runs it", async () => {
    const job = await readFile(
      path.join(ROOT, 'charts/integration-hub/templates/migration-job.yaml'),
      'utf8',
    );
    const args = /args: \[(.+)\]/
      .exec(job)?.[1]
      ?.split(',')
      .map((a) => a.trim());
    expect(args).toEqual(['dist/services/cli/main.js', 'migrate']);
    const name = `hub-image-migrate-${schema.slice(-6)}`;
    const r = await t.podman([
      'run',
      '--rm',
      ...podArgs(
        name,
        { DATABASE_URL, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: '2' },
        'migrate',
      ),
      IMAGE,
      ...args!,
    ]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^applied: 000001_core, /);
    expect(await db.schema.withSchema(schema).hasTable('allio_webhook')).toBe(true);
  }, 120_000);

  test(
    'every entry point the chart starts comes up ready; the operator takes its Lease and applies a SmartHomePartner',
    async () => {
      // Each in the chart's values, with the command its Deployment runs.
      expect(Object.keys(values.services).sort()).toEqual([...CHART_SERVICES].sort());
      await Promise.all(SERVICES.map((s) => startPod(s)));
      for (const s of SERVICES) {
        expect({ s, ...(await get(ports[s], '/healthz')) }).toEqual({
          s,
          status: 200,
          body: '{"status":"ok"}',
        });
      }
      expect((await get(ports.api, '/metrics')).body).toContain('process_resident_memory_bytes');

      kube.apply(
        {
          apiVersion: PARTNER_API_VERSION,
          kind: 'SmartHomePartner',
          metadata: { name: 'image-partner', namespace: NS },
          spec: { services: ['intercom'] },
        },
        'smarthomepartners',
      );
      const row = await waitFor(
        () =>
          db
            .withSchema(schema)
            .from('smart_home_partners')
            .where({ name: 'image-partner' })
            .first(),
        60_000,
        'partner row',
      );
      expect(row).toEqual(expect.objectContaining({ services: ['intercom'], active: true }));
      expect(kube.requests.some((r) => r.includes('/leases'))).toBe(true);
    },
    SERVICES.length * START_TIMEOUT_MS + 120_000,
  );

  test('an ALLIO webhook through the api becomes a CRM row written by allio-sync', async () => {
    const it = await addIntegration(db, { baseUrl: allio.url, token: 'image-test-token' });
    const res = await fetch(`http://127.0.0.1:${ports.api}/webhooks/allio/${it.webhookKey}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ uuid: it.uuid, command: 'RESERVE_ADD', indexes: [7] }),
    });
    expect(res.status).toBe(200);
    const row = await waitFor(
      () =>
        db
          .withSchema(schema)
          .from('crm_reservations')
          .where({ integration_id: it.id, external_id: '7' })
          .first(),
      60_000,
      'CRM row',
    );
    expect(row.contact_id).not.toBeNull();
  }, 90_000);

  test("the chart's helm test command passes on the ready api and names what is not ready", async () => {
    const check = (urls: string) =>
      t.podman([
        'run',
        '--rm',
        ...podArgs(
          `hub-image-check-${randomBytes(3).toString('hex')}`,
          { CHECK_URLS: urls },
          'migrate',
        ),
        IMAGE,
        'dist/services/cli/check-ready.js',
      ]);
    expect((await check(`http://127.0.0.1:${ports.api}/readyz`)).code).toBe(0);
    const down = `http://127.0.0.1:${await freePort()}/readyz`;
    const bad = await check(`http://127.0.0.1:${ports.api}/readyz,${down}`);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain(`NOT READY ${down}`);
  }, 60_000);

  test('SIGTERM stops every service with exit code 0', async () => {
    const pods = containers.filter((c) => SERVICES.some((s) => c.startsWith(`hub-image-${s}-`)));
    expect(pods).toHaveLength(SERVICES.length);
    // podman stop sends SIGTERM to tini (PID 1), which forwards it to node.
    const stopped = await Promise.all(pods.map((c) => t.podman(['stop', '--time', '30', c])));
    expect(stopped.map((r) => r.code)).toEqual(pods.map(() => 0));
    const codes = await Promise.all(
      pods.map(async (c) => ({
        c,
        exit: (await t.podman(['inspect', '--format', '{{.State.ExitCode}}', c])).stdout.trim(),
      })),
    );
    expect(codes).toEqual(pods.map((c) => ({ c, exit: '0' })));
  }, 120_000);
});
