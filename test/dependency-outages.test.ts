// The services as processes against a PostgreSQL and a Redis of this file's own, stopped and
// started again: a dependency missing at start is named with its variable, an outage while running
// is logged once per change of state (plus a reminder), the REST API answers 503 while PostgreSQL
// is down, and SIGTERM does not wait for a Redis that is away.
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createDb, type Db } from '../services/core/db.js';
import { Reconciler } from '../services/core/engine/reconciler.js';
import { WorkTable, type WorkRow } from '../services/core/engine/work-table.js';
import { createMetrics } from '../services/core/metrics.js';
import { migrate } from '../services/core/migrate.js';
import { freePort } from '../services/core/net.js';
import { addIntegration, type TestIntegration } from './support/allio.js';
import { createVhost, type TestVhost } from './support/amqp.js';
import { waitFor } from './support/context.js';
import { startOwnPostgres, startOwnRedis, type OwnServer } from './support/own-servers.js';
import {
  expectCleanExit,
  listeningPort,
  startServiceProcess,
  type ServiceProcess,
} from './support/process.js';

const SCHEMA = 'hub';
let pgServer: OwnServer;
let redisServer: OwnServer;
let vhost: TestVhost;
let db: Db;
let integration: TestIntegration;

beforeAll(async () => {
  [pgServer, redisServer, vhost] = await Promise.all([
    startOwnPostgres(),
    startOwnRedis(),
    createVhost('outages'),
  ]);
  db = createDb({ DATABASE_URL: pgServer.url, DATABASE_SCHEMA: SCHEMA, DATABASE_POOL_MAX: 2 });
  await migrate(db, SCHEMA);
  integration = await addIntegration(db, { baseUrl: 'https://allio.example' });
}, 60_000);
afterAll(async () => {
  await db?.destroy();
  await Promise.all([pgServer?.close(), redisServer?.close(), vhost?.close()]);
}, 30_000);

/** What the api (with the kitchen) and the mq-bridge need, against this file's servers. */
function serviceEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: pgServer.url,
    DATABASE_SCHEMA: SCHEMA,
    REDIS_URL: redisServer.url,
    AMQP_URL: vhost.url,
    PORT: '0',
    LOG_LEVEL: 'info',
    TENANT_JWT_ISSUER: 'http://127.0.0.1:9/',
    TENANT_JWKS_URL: 'http://127.0.0.1:9/jwks',
    TENANT_JWT_AUDIENCE: 'hub',
    DATA_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
    KITCHEN_API: 'true',
    KITCHEN_WAREHOUSE_WEBHOOK_SECRETS: `whsec_${randomBytes(24).toString('base64')}`,
    ...overrides,
  };
}

const listening = (p: ServiceProcess) => listeningPort(p, 30_000);

/** The process's JSON log lines at `level` or above (pino: 40 warn, 50 error), from `from` on. */
function linesAtLeast(p: ServiceProcess, level: number, from = 0): string[] {
  return p
    .output()
    .slice(from)
    .split('\n')
    .filter((l) => {
      const m = /^\{"level":"?(\w+)"?/.exec(l);
      const n = m
        ? (({ warn: 40, error: 50, fatal: 60 } as Record<string, number>)[m[1] ?? ''] ??
          Number(m[1]))
        : NaN;
      return n >= level;
    });
}

const STACK = /\n\s+at .+:\d+:\d+\)?|"stack":/;

async function stopProcesses(processes: ServiceProcess[]): Promise<void> {
  for (const p of processes) if (p.child.exitCode === null) p.child.kill('SIGTERM');
  for (const p of processes) await expectCleanExit(p);
}

describe('a dependency missing at start', () => {
  test.each(['services/api/main.ts', 'services/mq-bridge/main.ts'])(
    '%s with PostgreSQL unreachable exits 1 with one line naming DATABASE_URL and how to fix it',
    async (entry) => {
      const closed = await freePort();
      const p = startServiceProcess(
        entry,
        serviceEnv({ DATABASE_URL: `postgres://postgres:secret-pw@127.0.0.1:${closed}/postgres` }),
      );
      const code = await Promise.race([
        p.exited,
        new Promise((resolve) => setTimeout(() => resolve('still running'), 30_000)),
      ]);
      if (code !== 1) p.child.kill('SIGKILL');
      const out = p.output();
      expect(code).toBe(1);
      const line = out.split('\n').find((l) => l.includes('DATABASE_URL'));
      expect(line).toMatch(/PostgreSQL/);
      expect(line).toMatch(new RegExp(`127\\.0\\.0\\.1:${closed}`));
      expect(line).toMatch(/ECONNREFUSED/);
      expect(out).not.toMatch(STACK);
      expect(out).not.toContain('secret-pw');
    },
    40_000,
  );

  test('the api with Redis and RabbitMQ unreachable serves webhooks and says once each what it waits for, naming REDIS_URL and AMQP_URL', async () => {
    const [redisPort, amqpPort] = [await freePort(), await freePort()];
    const p = startServiceProcess(
      'services/api/main.ts',
      serviceEnv({
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        AMQP_URL: `amqp://guest:guest@127.0.0.1:${amqpPort}`,
      }),
    );
    try {
      const port = await listening(p);
      const res = await fetch(`http://127.0.0.1:${port}/webhooks/allio/${integration.webhookKey}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ uuid: integration.uuid, command: 'RESERVE_ADD', indexes: [1] }),
      });
      expect(res.status).toBe(200);
      // Several reconnect attempts of each (every 0.2–5 s for Redis, every 2 s for RabbitMQ).
      await new Promise((resolve) => setTimeout(resolve, 8_000));
      const warnings = linesAtLeast(p, 40);
      expect(warnings.filter((l) => l.includes('REDIS_URL'))).toHaveLength(1);
      expect(warnings.filter((l) => l.includes('AMQP_URL'))).toHaveLength(1);
      expect(warnings.length).toBeLessThanOrEqual(3);
      expect(p.output()).not.toMatch(STACK);
    } finally {
      await stopProcesses([p]);
    }
  }, 60_000);
});

describe('outages while running', () => {
  test('Redis down: each service logs one line when it goes, not one per failed call, and one when it is back', async () => {
    const processes = [
      startServiceProcess('services/api/main.ts', serviceEnv()),
      startServiceProcess('services/mq-bridge/main.ts', serviceEnv()),
    ];
    try {
      await Promise.all(processes.map(listening));
      await waitFor(
        () => processes.every((p) => p.output().includes('rabbitmq connected')),
        20_000,
        'rabbitmq connected',
      );
      const from = processes.map((p) => p.output().length);
      await redisServer.stop();
      // Ten seconds down: reconnect attempts, the timeout sweep, kitchen and smart-home calls.
      await new Promise((resolve) => setTimeout(resolve, 10_000));
      processes.forEach((p, i) => {
        const warnings = linesAtLeast(p, 40, from[i]);
        if (warnings.length > 2) console.log(`${p.entry}:\n${warnings.join('\n')}`);
        expect(warnings.length).toBeGreaterThanOrEqual(1);
        expect(warnings.length).toBeLessThanOrEqual(2);
        expect(warnings.join('\n')).toMatch(/redis unavailable/);
        expect(p.output().slice(from[i])).not.toMatch(STACK);
      });
      await redisServer.start();
      await waitFor(
        () => processes.every((p) => p.output().includes('redis available again')),
        20_000,
        'redis back in both logs',
      );
    } finally {
      await redisServer.start().catch(() => undefined);
      await stopProcesses(processes);
    }
  }, 90_000);

  test('SIGTERM while Redis is down: the process says what it waits for and exits within 2 s', async () => {
    const processes = [
      startServiceProcess('services/api/main.ts', serviceEnv()),
      startServiceProcess('services/mq-bridge/main.ts', serviceEnv()),
    ];
    try {
      await Promise.all(processes.map(listening));
      await waitFor(
        () => processes.every((p) => p.output().includes('rabbitmq connected')),
        20_000,
        'rabbitmq connected',
      );
      await redisServer.stop();
      await waitFor(
        () => processes.every((p) => p.output().includes('redis unavailable')),
        15_000,
        'redis down in both logs',
      );
      const exits = await Promise.all(
        processes.map(async (p) => {
          const started = Date.now();
          p.child.kill('SIGTERM');
          const code = await p.exited;
          return { p, code, ms: Date.now() - started };
        }),
      );
      for (const { p, code, ms } of exits) {
        if (code !== 0 || ms > 2_500 || !/shutting down.*waiting for/.test(p.output())) {
          console.log(`${p.entry} exited ${String(code)} after ${ms} ms:\n${p.output()}`);
        }
      }
      for (const { p, code, ms } of exits) {
        expect(code).toBe(0);
        // 2 s of budget plus the process's own exit on a loaded machine.
        expect(ms).toBeLessThan(2_500);
        expect(p.output()).toMatch(/shutting down.*waiting for/);
      }
    } finally {
      await redisServer.start();
      for (const p of processes) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  }, 90_000);

  test('PostgreSQL down: webhooks are answered 503 database_unavailable with Retry-After, and 200 again once it is back', async () => {
    const p = startServiceProcess('services/api/main.ts', serviceEnv());
    const send = async (port: number) => {
      const res = await fetch(`http://127.0.0.1:${port}/webhooks/allio/${integration.webhookKey}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ uuid: integration.uuid, command: 'RESERVE_ADD', indexes: [7] }),
      });
      return {
        status: res.status,
        retryAfter: res.headers.get('retry-after'),
        body: (await res.json()) as { error?: { code: string } },
      };
    };
    try {
      const port = await listening(p);
      expect((await send(port)).status).toBe(200);
      await pgServer.stop();
      const down = await send(port);
      expect(down.status).toBe(503);
      expect(down.body.error?.code).toBe('database_unavailable');
      expect(Number(down.retryAfter)).toBeGreaterThanOrEqual(1);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.text()).toContain('postgres');
      // A second request while down: still 503, and no stack trace in the log for either.
      expect((await send(port)).status).toBe(503);
      expect(p.output()).not.toMatch(STACK);
      await pgServer.start();
      await waitFor(
        async () => (await send(port)).status === 200,
        20_000,
        'webhooks accepted again',
      );
    } finally {
      await pgServer.start().catch(() => undefined);
      await stopProcesses([p]);
    }
  }, 90_000);

  test('PostgreSQL down: answers that never reached it (404, malformed body) do not log it back; one line when it goes, one when it answers again', async () => {
    const p = startServiceProcess('services/api/main.ts', serviceEnv());
    const webhook = (body: string) =>
      fetch(`http://127.0.0.1:${port}/webhooks/allio/${integration.webhookKey}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      }).then(async (res) => (await res.arrayBuffer(), res.status));
    const valid = JSON.stringify({ uuid: integration.uuid, command: 'RESERVE_ADD', indexes: [9] });
    const lines = (msg: string) =>
      p
        .output()
        .split('\n')
        .filter((l) => l.includes(`"msg":"${msg}`));
    let port = 0;
    try {
      port = await listening(p);
      expect(await webhook(valid)).toBe(200);
      await pgServer.stop();
      expect(await webhook(valid)).toBe(503);
      // Answered without a query: a path no route serves, a body that is not JSON.
      expect(
        await fetch(`http://127.0.0.1:${port}/no-such-route`).then(
          async (r) => (await r.arrayBuffer(), r.status),
        ),
      ).toBe(404);
      expect(await webhook('{"uuid":')).toBe(400);
      expect(await webhook(valid)).toBe(503);
      // A line is logged before the answer goes out, but reaches us over the child's stdout pipe
      // on its own time: wait for it, then count.
      await waitFor(() => lines('postgresql unavailable').length > 0, 5_000, 'the outage line');
      expect(lines('postgresql available again')).toEqual([]);
      expect(lines('postgresql unavailable')).toHaveLength(1);

      await pgServer.start();
      await waitFor(async () => (await webhook(valid)) === 200, 20_000, 'webhooks accepted again');
      await waitFor(
        () => lines('postgresql available again').length > 0,
        5_000,
        'the line saying it is back',
      );
      expect(lines('postgresql available again')).toHaveLength(1);
      expect(lines('postgresql unavailable')).toHaveLength(1);
    } finally {
      await pgServer.start().catch(() => undefined);
      await stopProcesses([p]);
    }
  }, 90_000);

  test('PostgreSQL back after an outage of several seconds: a reconciler claims new work within 2.5 s, not after the rest of a long backoff', async () => {
    const logger = pino({ level: 'silent' });
    const metrics = createMetrics();
    const table = new WorkTable(db, metrics, logger, {
      table: 'periodic_runs',
      reconciler: 'outage',
      leaseMs: 30_000,
      maxAttempts: 3,
    });
    const filter = { sql: 'name = ?', bindings: ['outage-probe'] };
    const handled: number[] = [];
    const r = new Reconciler<WorkRow>({
      name: 'outage',
      owner: 'me',
      logger,
      metrics,
      pollMinMs: 100,
      pollMaxMs: 200,
      claim: (owner) => table.claim(owner, 10, filter),
      handle: async (batch, owner) => {
        handled.push(Date.now());
        await table.complete(
          batch.map((b) => b.id),
          owner,
        );
      },
    });
    r.start();
    try {
      await pgServer.stop();
      // Long enough for claims to fail several times over (0.5 s, 1 s, 2 s, 4 s, 8 s … doubling).
      await new Promise((resolve) => setTimeout(resolve, 12_000));
      await pgServer.start();
      const back = Date.now();
      await waitFor(
        async () => {
          await db('periodic_runs').insert({ name: 'outage-probe', period_key: 'p1' });
          return true;
        },
        10_000,
        'an insert once PostgreSQL is back',
      );
      await waitFor(() => handled.length > 0, 30_000, 'the reconciler to claim again');
      expect((handled[0] ?? Infinity) - back).toBeLessThan(2_500);
    } finally {
      await pgServer.start();
      await r.stop();
    }
  }, 60_000);
});
