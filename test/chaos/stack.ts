// The chaos stack: servers of its own (servers.ts), the simulators in this process, and the hub's
// Deployments as pods — the built entry points (`dist/services/*/main.js`) in child processes with
// the chart's env (charts/integration-hub/values.yaml: api ×2 with the kitchen routes, allio-sync,
// mq-bridge ×2, kitchen ×2; allio-sync runs ×3 here so that leases are contended). A pod has a name
// (its INSTANCE_ID), a port for /healthz, /readyz and /metrics, a log file, and a record of how it
// ended: killed by the harness, stopped by a rollout, or an exit nobody asked for. A pod started for
// the partition fault runs in a network namespace of its own (netns.ts) and reaches the servers
// through the run's bridge; every other pod runs on the machine's network, as before.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  createWriteStream,
  mkdirSync,
  readdirSync,
  readlinkSync,
  writeFileSync,
  type WriteStream,
} from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { pino } from 'pino';
import { upsertIntegration } from '../../services/domains/allio/integrations.js';
import {
  API_VERSION as ALLIO_API_VERSION,
  allioIntegrationResource,
} from '../../services/domains/allio/resource.js';
import { createApiKey } from '../../services/core/auth/api-keys.js';
import { createDb, type Db } from '../../services/core/db.js';
import { migrate } from '../../services/core/migrate.js';
import { freePort } from '../../services/core/net.js';
import { API_VERSION } from '../../services/core/resource.js';
import { BORSCHT, SALAD } from '../../services/hub/demo-cards.js';
import { upsertPartner } from '../../services/domains/smart-home/partners.js';
import {
  defaultCommandQueue,
  smartHomePartnerResource,
} from '../../services/contracts/smart-home-partner.js';
import { startAllioSimulatorThread, type AllioSimulatorThread } from './allio-thread.js';
import { installWriteAudit, workTables } from './fencing.js';
import { createIsolationNet, removeLeftovers, type IsolationNet, type PodNet } from './netns.js';
import { startOneCSimulator, type OneCSimulator } from '../../services/simulators/onec/server.js';
import {
  startPaymentGateway,
  type PaymentGatewaySimulator,
} from '../../services/simulators/payment-gateway/server.js';
import {
  startRobotsSimulator,
  type RobotsSimulator,
} from '../../services/simulators/robots/server.js';
import { PartnerSimulator } from '../../services/simulators/smart-home/partner.js';
import { startTenantIdp, type TenantIdp } from '../../services/simulators/tenant-idp/server.js';
import { selfSignedCertificate } from '../../services/simulators/tls.js';
import {
  startWarehouseSimulator,
  type WarehouseSimulator,
} from '../../services/simulators/warehouse/server.js';
import { ensureBuilt, readRss, ROOT } from '../fuzz/child.js';
import {
  startPgCluster,
  startRabbit,
  startRedis,
  type Bridge,
  type PgCluster,
  type Rabbit,
  type RedisServer,
} from './servers.js';

export const DEPLOYMENTS = ['api', 'allio-sync', 'mq-bridge', 'kitchen'] as const;
export type DeploymentName = (typeof DEPLOYMENTS)[number];

/** Replicas per Deployment (the chart's, with allio-sync at 3). */
export const REPLICAS: Record<DeploymentName, number> = {
  api: 2,
  'allio-sync': 3,
  'mq-bridge': 2,
  kitchen: 2,
};

/** Leases of the work each Deployment claims: allio-sync and kitchen from env, mq-bridge's fixed 30 s. */
export const LEASE_MS: Record<DeploymentName, number> = {
  api: 0,
  'allio-sync': 8_000,
  'mq-bridge': 30_000,
  kitchen: 8_000,
};

/** Deployments whose pods may run in a network namespace: their partners (ALLIO, RabbitMQ) are reachable through the bridge. */
export const ISOLATABLE = ['allio-sync', 'mq-bridge'] as const satisfies readonly DeploymentName[];

const ENTRY: Record<DeploymentName, string> = {
  api: 'dist/services/api/main.js',
  'allio-sync': 'dist/services/allio-sync/main.js',
  'mq-bridge': 'dist/services/mq-bridge/main.js',
  kitchen: 'dist/services/kitchen/main.js',
};

/** `port-taken`: another program took its port between the pick and the listen (a harness race, retried). */
export type PodEnd = 'killed' | 'stopped' | 'unexpected' | 'port-taken';

export interface Pod {
  name: string;
  deployment: DeploymentName;
  /** Where the harness reaches it: 127.0.0.1, or its address in its network namespace. */
  host: string;
  port: number;
  /** Its network namespace, when it runs in one. */
  net?: PodNet;
  pid: number;
  child: ChildProcess;
  startedAt: number;
  /** When it first answered /healthz. */
  readyAt?: number;
  /** Set when it exited: the code or signal, and whether the harness asked for it. */
  exit?: { code: number | string; at: number; end: PodEnd };
  /** Why the harness is ending it (set before the signal), so its exit is not counted as a crash. */
  ending?: 'killed' | 'stopped';
  paused: boolean;
  exited: Promise<void>;
  /** The last 64 KiB of its output (the whole log is in the run dir). */
  tail(): string;
  rss(): number;
  /** Open sockets (file descriptors that are sockets). */
  sockets(): number;
}

export interface Simulators {
  allio: AllioSimulatorThread;
  partners: PartnerSimulator[];
  gateway: PaymentGatewaySimulator;
  robots: RobotsSimulator;
  onec: OneCSimulator;
  warehouse: WarehouseSimulator;
  idp: TenantIdp;
}

export interface Integration {
  id: string;
  name: string;
  uuid: string;
  webhookKey: string;
}

export interface ChaosStack {
  runDir: string;
  pg: PgCluster;
  redis: RedisServer;
  rabbit: Rabbit;
  db: Db;
  sims: Simulators;
  integrations: Integration[];
  partnerNames: string[];
  adminKey: string;
  /** Every pod ever started, live and gone. */
  pods: Pod[];
  /** The bridge for pods in network namespaces, when asked for and the machine allows it. */
  net?: IsolationNet;
  /** Why there is no such network although one was asked for. */
  netSkipped?: string;
  live(deployment?: DeploymentName): Pod[];
  /** A random live, unpaused api pod's base URL (the Service in front of the api pods). */
  apiUrl(random?: () => number): string;
  /** `isolated`: in a network namespace of its own (needs `net`). */
  startPod(deployment: DeploymentName, o?: { isolated?: boolean }): Promise<Pod>;
  /** kill -9 (a crashed pod); the replacement starts at once, as the ReplicaSet would. */
  crash(pod: Pod): Promise<Pod>;
  /** SIGTERM and wait for the exit (the pod's graceful shutdown), up to the grace period. */
  terminate(pod: Pod): Promise<void>;
  /** Called with the pod list whenever it changes (Prometheus' file_sd). */
  onPodsChanged(listener: () => void): void;
  close(): Promise<void>;
}

export interface StackOptions {
  runDir: string;
  log?: (line: string) => void;
  /** LOG_LEVEL of the pods (default info). */
  logLevel?: string;
  /** Set up the bridge for pods in network namespaces (the partition fault). */
  isolation?: boolean;
}

const TAIL_BYTES = 64 * 1024;
const DATA_KEY = randomBytes(32).toString('base64');
export const GATEWAY_KEY = 'merchant-chaos-key';
export const ROBOTS_KEY = 'robots-chaos-key';
export const WAREHOUSE_SECRET = `whsec_${randomBytes(24).toString('base64')}`;
export const ALLIO_TOKEN = `allio-${randomBytes(8).toString('hex')}`;

/**
 * A free port below the ephemeral range (32768–60999 on Linux), where the kernel does not hand out
 * ports to outgoing connections, so that few programs race a pod for it.
 */
async function listenPort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '0.0.0.0', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  return freePort();
}

/** Sockets of a process: links of /proc/<pid>/fd that read `socket:[…]`. */
export function socketsOf(pid: number): number {
  try {
    let n = 0;
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
      } catch {
        // closed meanwhile
      }
    }
    return n;
  } catch {
    return 0;
  }
}

export async function startChaosStack(o: StackOptions): Promise<ChaosStack> {
  const log = o.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  ensureBuilt([...Object.values(ENTRY), 'dist/services/simulators/allio/server.js']);
  mkdirSync(o.runDir, { recursive: true });
  const t0 = Date.now();
  const { net, netSkipped } = o.isolation ? await isolationNet(log) : {};
  const netNow = () => net?.closeNow();
  process.once('exit', netNow);
  const bridge: Bridge | undefined = net && { address: net.hostAddress, subnet: net.subnet };
  const [pg, redis, rabbit] = await Promise.all([
    startPgCluster(bridge),
    startRedis(bridge),
    startRabbit(bridge),
  ]).catch(async (e: unknown) => {
    await net?.close();
    throw e;
  });
  log(
    `servers up in ${((Date.now() - t0) / 1000).toFixed(1)} s: postgres :${pg.port}, redis :${redis.port}, rabbitmq :${rabbit.node.port}${net ? ` (also on ${net.hostAddress})` : ''}`,
  );
  const dbConfig = { DATABASE_URL: pg.url, DATABASE_SCHEMA: 'public', DATABASE_POOL_MAX: 5 };
  const db = createDb(dbConfig, { applicationName: 'chaos-harness' });
  await migrate(db, 'public');
  if (net) await installWriteAudit(db, await workTables(db), net.subnet, net.hostAddress);

  const quiet = pino({ level: 'silent' });
  const certificate = await selfSignedCertificate();
  const caFile = path.join(o.runDir, 'gateway-ca.pem');
  writeFileSync(caFile, certificate.cert);
  // Pods in namespaces reach ALLIO through the bridge, so it listens there (the others reach that
  // address as well: it is one of this machine's).
  const allio = await startAllioSimulatorThread(ALLIO_TOKEN, net?.hostAddress);
  const gateway = await startPaymentGateway({ certificate, apiKey: GATEWAY_KEY, hangMs: 1_500 });
  const robots = await startRobotsSimulator({ apiKey: ROBOTS_KEY, cookMs: 1_500, hangMs: 1_500 });
  const onec = await startOneCSimulator({ user: 'exchange', password: 'secret-1c', hangMs: 1_500 });
  const idp = await startTenantIdp();

  // Integrations and partners as the operator would write them.
  const integrations: Integration[] = [];
  for (let i = 0; i < 3; i++) {
    const name = `chaos-it-${i}`;
    const webhookKey = `wh_${randomBytes(16).toString('hex')}`;
    const uuid = randomUUID();
    const resource = allioIntegrationResource.parse({
      apiVersion: ALLIO_API_VERSION,
      kind: 'AllioIntegration',
      metadata: { name },
      spec: {
        integrationUuid: uuid,
        webhookKey,
        apiBaseUrl: allio.url,
        apiToken: ALLIO_TOKEN,
        deletionControl: false,
        active: true,
      },
    });
    const { id } = await upsertIntegration(db, resource);
    integrations.push({ id: String(id), name, uuid, webhookKey });
  }
  const partnerNames = ['acme', 'globex'];
  for (const name of partnerNames) {
    await upsertPartner(
      db,
      smartHomePartnerResource.parse({
        apiVersion: API_VERSION,
        kind: 'SmartHomePartner',
        metadata: { name },
        spec: { services: name === 'acme' ? ['intercom'] : ['barrier'] },
      }),
    );
  }
  const adminKey = (await createApiKey(db, 'chaos back office', ['kitchen-admin'])).key;

  const common = {
    DATABASE_URL: pg.url,
    DATABASE_SCHEMA: 'public',
    DATABASE_POOL_MAX: '5',
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: 'hub:',
    LOG_LEVEL: o.logLevel ?? 'info',
    SHUTDOWN_TIMEOUT_MS: '10000',
  };
  const smartHome = {
    DATA_ENCRYPTION_KEYS: `k1:${DATA_KEY}`,
    AMQP_URL: rabbit.url,
    SMART_HOME_REPLY_TIMEOUT_MS: '1500',
    SMART_HOME_MAX_ATTEMPTS: '3',
    SMART_HOME_COMMAND_TTL_MS: '4000',
  };
  const env: Record<DeploymentName, Record<string, string>> = {
    api: {
      ...common,
      ...smartHome,
      HTTP_BODY_LIMIT_BYTES: '262144',
      WS_MAX_BUFFERED_BYTES: '262144',
      WS_HEARTBEAT_MS: '5000',
      TENANT_JWT_ISSUER: idp.issuer,
      TENANT_JWKS_URL: idp.jwksUrl,
      TENANT_JWT_AUDIENCE: idp.audience,
      KITCHEN_API: 'true',
      KITCHEN_WAREHOUSE_WEBHOOK_SECRETS: WAREHOUSE_SECRET,
    },
    'allio-sync': {
      ...common,
      EGRESS_IP: 'default',
      ALLIO_TASK_LEASE_MS: String(LEASE_MS['allio-sync']),
      ALLIO_HTTP_TIMEOUT_MS: '3000',
      OUTBOUND_ALLOW_HTTP: 'true',
    },
    'mq-bridge': { ...common, ...smartHome },
    kitchen: {
      ...common,
      AMQP_URL: rabbit.url,
      KITCHEN_PAYMENT_URL: gateway.url,
      KITCHEN_PAYMENT_API_KEY: GATEWAY_KEY,
      KITCHEN_PAYMENT_CA_FILE: caFile,
      KITCHEN_PAYMENT_TIMEOUT_MS: '1000',
      KITCHEN_ROBOTS_URL: robots.url,
      KITCHEN_ROBOTS_API_KEY: ROBOTS_KEY,
      KITCHEN_ROBOTS_TIMEOUT_MS: '1000',
      KITCHEN_ROBOTS_BACKOFF_MS: '200',
      KITCHEN_PRODUCTION_POLL_MS: '300',
      KITCHEN_LEASE_MS: String(LEASE_MS.kitchen),
      ONEC_ODATA_URL: onec.url,
      ONEC_USER: 'exchange',
      ONEC_PASSWORD: 'secret-1c',
      ONEC_TIMEOUT_MS: '1000',
      KITCHEN_ONEC_CATCHUP_HOURS: '2',
      OUTBOUND_ALLOW_HTTP: 'true',
    },
  };

  const pods: Pod[] = [];
  let closing = false;
  const counters: Record<DeploymentName, number> = {
    api: 0,
    'allio-sync': 0,
    'mq-bridge': 0,
    kitchen: 0,
  };
  const listeners: Array<() => void> = [];
  const changed = () => listeners.forEach((l) => l());
  const logsDir = path.join(o.runDir, 'pods');
  mkdirSync(logsDir, { recursive: true });

  async function startPod(
    deployment: DeploymentName,
    so: { isolated?: boolean } = {},
  ): Promise<Pod> {
    for (let attempt = 1; ; attempt++) {
      const pod = await launchPod(deployment, so.isolated ?? false);
      if (await waitReady(pod)) return pod;
      if (attempt >= 3) throw new Error(`${pod.name}: its port was taken three times`);
    }
  }

  async function launchPod(deployment: DeploymentName, isolated: boolean): Promise<Pod> {
    if (isolated && !(ISOLATABLE as readonly string[]).includes(deployment)) {
      throw new Error(`${deployment} pods cannot run in a network namespace`);
    }
    if (isolated && !net) {
      throw new Error(`no network for pods in namespaces: ${netSkipped ?? 'not asked for'}`);
    }
    const podNet = isolated ? await net?.addPod() : undefined;
    const name = `${deployment}-${counters[deployment]++}`;
    const port = await listenPort();
    const file: WriteStream = createWriteStream(path.join(logsDir, `${name}.log`));
    const argv = [process.execPath, path.join(ROOT, ENTRY[deployment])];
    const [cmd, ...args] = podNet ? podNet.wrap(argv) : argv;
    // A pod in a namespace reaches every server through the bridge address instead of 127.0.0.1.
    const through = (v: string) =>
      net && podNet ? v.replace(/(\/\/|@)127\.0\.0\.1:/g, `$1${net.hostAddress}:`) : v;
    const podEnv = Object.fromEntries(
      Object.entries(env[deployment]).map(([k, v]) => [k, through(v)]),
    );
    const child = spawn(cmd as string, args, {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        ...podEnv,
        INSTANCE_ID: name,
        PORT: String(port),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let tail = '';
    const take = (d: Buffer) => {
      file.write(d);
      tail += d.toString();
      if (tail.length > TAIL_BYTES * 2) tail = tail.slice(-TAIL_BYTES);
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    const pod: Pod = {
      name,
      deployment,
      host: podNet?.address ?? '127.0.0.1',
      port,
      net: podNet,
      pid: child.pid ?? 0,
      child,
      startedAt: Date.now(),
      paused: false,
      exited: new Promise<void>((resolve) =>
        child.once('exit', (code, signal) => {
          const portTaken = !pod.readyAt && /EADDRINUSE/.test(tail);
          pod.exit = {
            code: code ?? signal ?? -1,
            at: Date.now(),
            end: pod.ending ?? (portTaken ? 'port-taken' : 'unexpected'),
          };
          if (pod.exit.end === 'unexpected') {
            log(
              `!! ${name} exited by itself (${String(pod.exit.code)}): ${tail.trim().split('\n').slice(-12).join(' | ').slice(0, 600)}`,
            );
            // The ReplicaSet replaces a crashed pod (the exit still fails the run).
            if (!closing) {
              setTimeout(
                () =>
                  void startPod(deployment).catch((e: unknown) =>
                    log(`!! replacing ${name} failed: ${String(e)}`),
                  ),
                1_000,
              );
            }
          }
          file.end();
          void podNet?.remove();
          changed();
          resolve();
        }),
      ),
      tail: () => tail.slice(-TAIL_BYTES),
      rss: () => readRss(child.pid),
      sockets: () => (child.pid ? socketsOf(child.pid) : 0),
    };
    pods.push(pod);
    return pod;
  }

  /** Waits for /healthz; false when the pod lost its port to another program (it is then gone). */
  async function waitReady(pod: Pod): Promise<boolean> {
    const { name, host, port } = pod;
    // Generous: on a loaded machine a Node process takes tens of seconds to load its modules.
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (pod.exit?.end === 'port-taken') return false;
      if (pod.exit) {
        throw new Error(
          `${name} exited with ${String(pod.exit.code)} while starting:\n${pod.tail().slice(-4000)}`,
        );
      }
      if (await healthy(port, host)) break;
      if (Date.now() > deadline) {
        throw new Error(
          `${name} did not answer /healthz within 120 s:\n${pod.tail().slice(-4000)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 150));
    }
    pod.readyAt = Date.now();
    changed();
    return true;
  }

  async function terminate(pod: Pod): Promise<void> {
    if (pod.exit) return;
    pod.ending = 'stopped';
    if (pod.paused) {
      pod.child.kill('SIGCONT');
      pod.paused = false;
    }
    pod.child.kill('SIGTERM');
    const timer = setTimeout(() => pod.child.kill('SIGKILL'), 25_000);
    await pod.exited;
    clearTimeout(timer);
  }

  // Should the harness die (a test timeout, ^C), no pod, server or simulator may outlive it.
  const reaper = () => {
    for (const p of pods) if (!p.exit) p.child.kill('SIGKILL');
    pg.stopNow();
    redis.stopNow();
    net?.closeNow();
  };
  process.once('exit', reaper);

  const live = (deployment?: DeploymentName) =>
    pods.filter((p) => !p.exit && !p.ending && (!deployment || p.deployment === deployment));

  const stack: ChaosStack = {
    runDir: o.runDir,
    pg,
    redis,
    rabbit,
    db,
    integrations,
    partnerNames,
    adminKey,
    pods,
    net,
    netSkipped,
    sims: {
      allio,
      partners: [],
      gateway,
      robots,
      onec,
      warehouse: undefined as unknown as WarehouseSimulator,
      idp,
    },
    live,
    apiUrl(random = Math.random) {
      const candidates = live('api').filter((p) => !p.paused);
      const pod = candidates[Math.floor(random() * candidates.length)] ?? live('api')[0];
      if (!pod) throw new Error('no api pod is running');
      return `http://127.0.0.1:${pod.port}`;
    },
    startPod,
    async crash(pod) {
      pod.ending = 'killed';
      pod.child.kill('SIGKILL');
      await pod.exited;
      return startPod(pod.deployment);
    },
    terminate,
    onPodsChanged: (l) => listeners.push(l),
    async close() {
      closing = true;
      await Promise.all(live().map((p) => terminate(p)));
      for (const p of pods) if (!p.exit) p.child.kill('SIGKILL');
      await Promise.all(stack.sims.partners.map((p) => p.stop().catch(() => undefined)));
      await Promise.all(
        [
          allio.close(),
          gateway.close(),
          robots.close(),
          onec.close(),
          stack.sims.warehouse?.close(),
          idp.close(),
        ].map((p) => p?.catch(() => undefined)),
      );
      await db.destroy().catch(() => undefined);
      await Promise.all(
        [pg.stop(), redis.stop(), rabbit.stop()].map((p) => p.catch(() => undefined)),
      );
      await net?.close().catch(() => undefined);
      process.removeListener('exit', reaper);
      process.removeListener('exit', netNow);
    },
  };

  try {
    // Deployments come up in the order a fresh install brings them: the api first (it declares
    // nothing the others need, but the kitchen's warehouse webhooks land on it), then the workers.
    await Promise.all(Array.from({ length: REPLICAS.api }, () => startPod('api')));
    await Promise.all(
      DEPLOYMENTS.filter((d) => d !== 'api').flatMap((d) =>
        Array.from({ length: REPLICAS[d] }, () => startPod(d)),
      ),
    );
    for (const name of partnerNames) {
      const sim = new PartnerSimulator({
        amqpUrl: rabbit.url,
        partner: name,
        commandQueue: defaultCommandQueue(name),
        logger: quiet,
        behaviour: { delayMs: 50 },
      });
      await sim.start();
      stack.sims.partners.push(sim);
    }
    const warehouse = await startWarehouseSimulator({
      targetUrl: `${stack.apiUrl()}/webhooks/warehouse`,
      secret: WAREHOUSE_SECRET,
    });
    stack.sims.warehouse = warehouse;
    await seedKitchen(stack);
    log(
      `pods up in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${pods.map((p) => p.name).join(', ')}`,
    );
  } catch (e) {
    await stack.close();
    throw e;
  }
  return stack;
}

/**
 * The bridge and its namespaces, after removing what a crashed run left; when the machine does not
 * allow them (no root, no bridge support), the reason instead, printed: the partition is then skipped.
 */
async function isolationNet(
  log: (line: string) => void,
): Promise<{ net?: IsolationNet; netSkipped?: string }> {
  const left = removeLeftovers();
  if (left.length > 0) {
    log(`removed network namespaces and links a crashed run left: ${left.join(', ')}`);
  }
  try {
    const net = await createIsolationNet();
    log(`network for pods in namespaces: bridge ${net.bridge} ${net.hostAddress} (${net.subnet})`);
    return { net };
  } catch (e) {
    const netSkipped = `network namespaces unavailable: ${(e as Error).message}`;
    log(`!! ${netSkipped}; the partition fault will be skipped`);
    return { netSkipped };
  }
}

export async function healthy(port: number, host = '127.0.0.1'): Promise<boolean> {
  try {
    const res = await fetch(`http://${host}:${port}/healthz`, {
      signal: AbortSignal.timeout(3_000),
    });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** The demo menu and plenty of stock, through the API and signed warehouse webhooks. */
async function seedKitchen(s: ChaosStack): Promise<void> {
  for (const [dish, xml] of [
    ['borscht', BORSCHT],
    ['salad', SALAD],
  ] as const) {
    const res = await fetch(`${s.apiUrl()}/v1/kitchen/tech-cards/${dish}`, {
      method: 'PUT',
      headers: { 'x-api-key': s.adminKey, 'content-type': 'application/xml' },
      body: xml,
    });
    if (res.status !== 200) {
      throw new Error(`tech card ${dish} refused: ${res.status} ${await res.text()}`);
    }
  }
  const expiresAt = new Date(Date.now() + 7 * 86_400_000).toISOString();
  for (const ingredient of ['beet', 'beef', 'walnut']) {
    const r = await s.sims.warehouse.send('stock.level', {
      ingredient,
      quantity: 50_000_000,
      unit: 'g',
      expiresAt,
    });
    if (r.status !== 200) throw new Error(`stock level refused: ${JSON.stringify(r.body)}`);
  }
  // The kitchen pods apply stored warehouse events; orders wait until the stock is there.
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const rows = await s.db('kitchen_stock').select('ingredient');
    if (new Set(rows.map((r: { ingredient: string }) => r.ingredient)).size >= 3) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the kitchen did not apply the warehouse stock within 30 s');
}
