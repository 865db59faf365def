// The kitchen entry point as a real process: it refuses to start naming missing variables, and with
// its configuration it becomes ready (PostgreSQL, RabbitMQ) and stops cleanly on SIGTERM.
import { writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { DATABASE_URL, waitFor } from './support/context.js';
import {
  GATEWAY_KEY,
  ROBOTS_KEY,
  startKitchenStack,
  type KitchenStack,
} from './support/kitchen.js';
import { expectCleanExit, listeningPort, startServiceProcess } from './support/process.js';

let s: KitchenStack;
const caFile = path.join(tmpdir(), `hub-kitchen-ca-${process.pid}.pem`);

beforeAll(async () => {
  s = await startKitchenStack('kmain');
  await writeFile(caFile, s.certificate.cert);
});
afterAll(async () => {
  await rm(caFile, { force: true });
  await s?.close();
});

test('the kitchen entry point names every missing variable and exits 1', async () => {
  const p = startServiceProcess('services/kitchen/main.ts', { DATABASE_URL });
  expect(await p.exited).toBe(1);
  for (const name of [
    'AMQP_URL',
    'KITCHEN_PAYMENT_URL',
    'KITCHEN_ROBOTS_API_KEY',
    'ONEC_ODATA_URL',
    'ONEC_PASSWORD',
  ]) {
    expect(p.output()).toContain(name);
  }
}, 30_000);

/** What the kitchen entry point needs to start against this file's stack. */
function kitchenEnv(): Record<string, string> {
  return {
    DATABASE_URL,
    DATABASE_SCHEMA: s.ctx.schema,
    AMQP_URL: s.vhost.url,
    PORT: '0',
    LOG_LEVEL: 'info',
    KITCHEN_PAYMENT_URL: s.gateway.url,
    KITCHEN_PAYMENT_API_KEY: GATEWAY_KEY,
    KITCHEN_PAYMENT_CA_FILE: caFile,
    KITCHEN_ROBOTS_URL: s.robots.url,
    KITCHEN_ROBOTS_API_KEY: ROBOTS_KEY,
    ONEC_ODATA_URL: s.onec.url,
    ONEC_USER: 'exchange',
    ONEC_PASSWORD: 'secret-1c',
  };
}

test('the kitchen entry point refuses a plain-HTTP partner URL without OUTBOUND_ALLOW_HTTP and exits 1 saying why', async () => {
  const p = startServiceProcess('services/kitchen/main.ts', kitchenEnv());
  expect(await p.exited).toBe(1);
  expect(p.output()).toContain('outbound_scheme: robots: http:// is not allowed');
  expect(s.robots.url.startsWith('http://')).toBe(true);
}, 30_000);

test('the kitchen entry point becomes ready and stops cleanly on SIGTERM', async () => {
  // The robots and 1C simulators speak plain HTTP on 127.0.0.1.
  const p = startServiceProcess('services/kitchen/main.ts', {
    ...kitchenEnv(),
    OUTBOUND_ALLOW_HTTP: 'true',
  });
  try {
    const port = await listeningPort(p);
    const ready = await waitFor(
      async () => {
        const r = await fetch(`http://127.0.0.1:${port}/readyz`);
        return r.status === 200 ? r.json() : undefined;
      },
      10_000,
      'ready',
    );
    expect(ready).toMatchObject({ status: 'ready' });
    expect(p.output()).not.toContain('secret-1c');
  } finally {
    p.child.kill('SIGTERM');
    await expectCleanExit(p);
  }
}, 90_000);
