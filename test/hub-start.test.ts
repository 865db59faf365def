// `npm start -- --simulators` as a newcomer runs it: one process, migrated on start, data flowing
// from the demo webhooks into the CRM, ready, and a clean exit on SIGTERM.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { createTestContext, DATABASE_URL, REDIS_URL, waitFor, type TestContext } from './support/context.js';
import { startServiceProcess } from './support/process.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext('hubstart');
});
afterAll(async () => {
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
    PORT: '0',
    ALLIO_SIM_PORT: '0',
    LOG_LEVEL: 'info',
  }, ['--simulators']);
  try {
    const port = await waitFor(() => /"address":"http:\/\/[^"]*:(\d+)"/.exec(hub.output())?.[1], 20_000, 'the hub to listen');
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(200);
    await waitFor(async () => {
      const n = await ctx.db.raw(`select count(*)::int as n from "${schema}".crm_contacts`).catch(() => ({ rows: [{ n: 0 }] }));
      return n.rows[0].n > 0;
    }, 20_000, 'demo data in the CRM');
    const demo = await ctx.db.raw(`select name, deletion_control from "${schema}".allio_integrations`);
    expect(demo.rows).toEqual([{ name: 'demo', deletion_control: true }]);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/hub_allio_records_synced_total\{entity="(reserve|dealcard)"\} [1-9]/);
  } finally {
    hub.child.kill('SIGTERM');
    expect(await hub.exited).toBe(0);
    await ctx.db.raw(`drop schema if exists "${schema}" cascade`);
  }
}, 60_000);
