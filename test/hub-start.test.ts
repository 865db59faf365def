// `npm start -- --simulators` as a newcomer runs it: one process, migrated on start, data flowing
// from the demo webhooks into the CRM, ready, and a clean exit on SIGTERM.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { createTestContext, DATABASE_URL, REDIS_URL, waitFor, type TestContext } from './support/context.js';
import { startServiceProcess, expectCleanExit } from './support/process.js';
import { createVhost, type TestVhost } from './support/amqp.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

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

test('the all-in-one process with simulators syncs demo data within seconds and stops cleanly', async () => {
  // A schema nobody has migrated yet: start-up must migrate it.
  const schema = `${ctx.schema}_fresh`;
  const hub = startServiceProcess('services/hub/main.ts', {
    DATABASE_URL,
    DATABASE_SCHEMA: schema,
    REDIS_URL,
    REDIS_KEY_PREFIX: ctx.keyPrefix,
    AMQP_URL: vhost.url,
    PORT: '0',
    ALLIO_SIM_PORT: '0',
    TENANT_IDP_PORT: '0',
    HUB_DEV_DIR: mkdtempSync(path.join(tmpdir(), 'hub-dev-')),
    LOG_LEVEL: 'info',
  }, ['--simulators']);
  try {
    const port = await waitFor(() => /"address":"http:\/\/[^"]*:(\d+)"/.exec(hub.output())?.[1], 45_000, 'the hub to listen');
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(200);
    await waitFor(async () => {
      const n = await ctx.db.raw(`select count(*)::int as n from "${schema}".crm_contacts`).catch(() => ({ rows: [{ n: 0 }] }));
      return n.rows[0].n > 0;
    }, 45_000, 'demo data in the CRM');
    const demo = await ctx.db.raw(`select name, deletion_control from "${schema}".allio_integrations`);
    expect(demo.rows).toEqual([{ name: 'demo', deletion_control: true }]);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/hub_allio_records_synced_total\{entity="(reserve|dealcard)"\} [1-9]/);
    // The kitchen demo: menu imported, stock arrived through signed warehouse webhooks.
    await waitFor(() => hub.output().includes('demo: kitchen ready'), 45_000, 'the kitchen demo');
    const stock = await ctx.db.raw(`select count(*)::int as n from "${schema}".kitchen_warehouse_events`);
    expect(stock.rows[0].n).toBe(3);
    // Start-up is over (the smart-home demo comes last), so SIGTERM meets the shutdown steps.
    await waitFor(() => hub.output().includes('integration hub running'), 45_000, 'start-up to finish');
  } catch (e) {
    console.log(hub.output());
    throw e;
  } finally {
    hub.child.kill('SIGTERM');
    await expectCleanExit(hub);
    await ctx.db.raw(`drop schema if exists "${schema}" cascade`);
  }
}, 180_000);
