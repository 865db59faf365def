// `npm start -- --simulators` as a newcomer runs it: one process, migrated on start, data flowing
// from the demo webhooks into the CRM, ready, and a clean exit on SIGTERM.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import {
  AMQP_URL,
  createTestContext,
  DATABASE_URL,
  REDIS_URL,
  waitFor,
  type TestContext,
} from './support/context.js';
import { startServiceProcess, expectCleanExit } from './support/process.js';
import { createVhost, type TestVhost } from './support/amqp.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../services/core/net.js';

let ctx: TestContext;
let vhost: TestVhost;
beforeAll(async () => {
  ctx = await createTestContext('hubstart');
  vhost = await createVhost('hubstart');
});
afterAll(async () => {
  await vhost.close();
  await ctx.close();
});

test('the all-in-one process with simulators syncs demo data within seconds, stops cleanly, and after a restart the CRM keeps growing', async () => {
  // A schema nobody has migrated yet: start-up must migrate it.
  const schema = `${ctx.schema}_fresh`;
  const devDir = mkdtempSync(path.join(tmpdir(), 'hub-dev-'));
  const start = () =>
    startServiceProcess(
      'services/hub/main.ts',
      {
        DATABASE_URL,
        DATABASE_SCHEMA: schema,
        REDIS_URL,
        REDIS_KEY_PREFIX: ctx.keyPrefix,
        AMQP_URL: vhost.url,
        PORT: '0',
        ALLIO_SIM_PORT: '0',
        TENANT_IDP_PORT: '0',
        AUTH_PORT: '0',
        HUB_DEV_DIR: devDir,
        LOG_LEVEL: 'info',
      },
      ['--simulators'],
    );
  const crmRecords = async () => {
    const r = await ctx.db
      .raw(`select (select count(*) from "${schema}".crm_reservations) + (select count(*) from "${schema}".crm_deals) as n,
      (select max(external_id::bigint) from (select external_id from "${schema}".crm_reservations union all select external_id from "${schema}".crm_deals) x) as max`);
    return { n: Number(r.rows[0].n), max: Number(r.rows[0].max ?? 0) };
  };
  type Hub = ReturnType<typeof start>;
  /** Starts the hub, runs `check`, waits for start-up to finish (the smart-home demo comes last, so
   *  SIGTERM meets the shutdown steps) and expects a clean exit on SIGTERM; prints the hub's output
   *  when anything fails. */
  const run = async (check: (hub: Hub) => Promise<void>) => {
    const hub = start();
    try {
      await check(hub);
      await waitFor(
        () => hub.output().includes('integration hub running'),
        45_000,
        'start-up to finish',
      );
    } catch (e) {
      console.log(hub.output());
      throw e;
    } finally {
      hub.child.kill('SIGTERM');
      await expectCleanExit(hub);
    }
  };
  try {
    await run(async (hub) => {
      const port = await waitFor(
        () => /"address":"http:\/\/[^"]*:(\d+)"/.exec(hub.output())?.[1],
        45_000,
        'the hub to listen',
      );
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(ready.status).toBe(200);
      await waitFor(
        async () => {
          const n = await ctx.db
            .raw(`select count(*)::int as n from "${schema}".crm_contacts`)
            .catch(() => ({ rows: [{ n: 0 }] }));
          return n.rows[0].n > 0;
        },
        45_000,
        'demo data in the CRM',
      );
      const demo = await ctx.db.raw(
        `select name, deletion_control from "${schema}".allio_integrations`,
      );
      expect(demo.rows).toEqual([{ name: 'demo', deletion_control: true }]);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(
        /hub_allio_records_synced_total\{entity="(reserve|dealcard)"\} [1-9]/,
      );
      // The kitchen demo: menu imported, stock arrived through signed warehouse webhooks.
      await waitFor(() => hub.output().includes('demo: kitchen ready'), 45_000, 'the kitchen demo');
      const stock = await ctx.db.raw(
        `select count(*)::int as n from "${schema}".kitchen_warehouse_events`,
      );
      expect(stock.rows[0].n).toBe(3);
    });
    // Restarted, the demo carries on after the records the CRM holds (it used to send ids 1, 2, 3
    // again, and "CRM now holds" stood still).
    const before = await crmRecords();
    expect(before.n).toBeGreaterThan(0);
    await run(async (hub) => {
      const firstNewId = Number(
        await waitFor(
          () => /"firstNewId":(\d+)/.exec(hub.output())?.[1],
          45_000,
          'the restarted demo',
        ),
      );
      expect(firstNewId).toBeGreaterThan(before.max);
      await waitFor(
        async () => (await crmRecords()).n > before.n,
        45_000,
        'new records in the CRM after the restart',
      );
    });
  } finally {
    await ctx.db.raw(`drop schema if exists "${schema}" cascade`);
  }
}, 300_000);

// A newcomer without one of the servers: start-up names it, its variable and how to start it, and
// ends with exit code 1 and no stack trace, within seconds (each server gets a few seconds to answer).
const SERVERS = [
  {
    name: 'PostgreSQL',
    variable: 'DATABASE_URL',
    url: (port: number) => `postgres://postgres@127.0.0.1:${port}/postgres`,
    debian: 'postgresql',
    compose: 'postgres',
  },
  {
    name: 'Redis',
    variable: 'REDIS_URL',
    url: (port: number) => `redis://127.0.0.1:${port}`,
    debian: 'redis-server',
    compose: 'redis',
  },
  {
    name: 'RabbitMQ',
    variable: 'AMQP_URL',
    url: (port: number) => `amqp://guest:guest@127.0.0.1:${port}`,
    debian: 'rabbitmq-server',
    compose: 'rabbitmq',
  },
] as const;

test.each(SERVERS)(
  'npm start without $name names it, $variable and how to start it, and exits 1 without a stack trace',
  async (missing) => {
    // A port that was just free: nothing listens there.
    const port = await freePort();
    const env: Record<string, string> = {
      DATABASE_URL,
      DATABASE_SCHEMA: `${ctx.schema}_never`,
      REDIS_URL,
      AMQP_URL: vhost.url,
      PORT: '0',
      ALLIO_SIM_PORT: '0',
      TENANT_IDP_PORT: '0',
      AUTH_PORT: '0',
      HUB_DEV_DIR: mkdtempSync(path.join(tmpdir(), 'hub-dev-')),
      [missing.variable]: missing.url(port),
    };
    const started = Date.now();
    const hub = startServiceProcess('services/hub/main.ts', env, ['--simulators']);
    const code = await hub.exited;
    const out = hub.output();
    const elapsedMs = Date.now() - started;
    try {
      expect(code).toBe(1);
      expect(out).toContain(`cannot start: ${missing.name} is not usable`);
      // Printed without the password.
      expect(out).toContain(
        `${missing.name} at ${missing.url(port).replace(':guest@', ':***@')} (${missing.variable}): nothing answers`,
      );
      expect(out).toContain(`ECONNREFUSED 127.0.0.1:${port}`);
      expect(out).toContain(`sudo apt-get install -y ${missing.debian}`);
      expect(out).toContain(`docker compose up -d ${missing.compose}`);
      expect(out).toContain('compose.yaml');
      // Only the missing one is named; nothing ran (no migration, no listener), no stack trace.
      for (const other of SERVERS.filter((s) => s !== missing)) {
        expect(out).not.toContain(`(${other.variable})`);
      }
      expect(out).not.toMatch(/\n\s+at /);
      expect(out).not.toContain('listening');
      const schemas = await ctx.db.raw(
        'select 1 from information_schema.schemata where schema_name = ?',
        [`${ctx.schema}_never`],
      );
      expect(schemas.rows).toEqual([]);
      // tsx compiling the entry point takes most of this on a loaded machine; the probes are bounded at 3 s.
      expect(elapsedMs).toBeLessThan(60_000);
    } catch (e) {
      console.log(out);
      throw e;
    }
  },
  90_000,
);

test('the start-up check reports a server that answers but refuses, naming what to fix', async () => {
  const hub = startServiceProcess('services/hub/main.ts', {
    DATABASE_URL,
    DATABASE_SCHEMA: `${ctx.schema}_never`,
    REDIS_URL,
    AMQP_URL: AMQP_URL.replace('guest:guest@', 'guest:wrong-password@'),
    PORT: '0',
    ALLIO_SIM_PORT: '0',
    TENANT_IDP_PORT: '0',
    AUTH_PORT: '0',
    HUB_DEV_DIR: mkdtempSync(path.join(tmpdir(), 'hub-dev-')),
  });
  expect(await hub.exited).toBe(1);
  const out = hub.output();
  expect(out).toContain('(AMQP_URL): answers, but refused');
  expect(out).toContain('ACCESS_REFUSED');
  expect(out).toContain('check the user, password and vhost in AMQP_URL');
  expect(out).not.toContain('wrong-password');
  expect(out).not.toMatch(/\n\s+at /);
}, 90_000);
