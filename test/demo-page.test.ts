// The tenant demo page of `npm start -- --simulators`, end to end in real headless Chromium: sign
// in, connect the intercom and the barrier, open them, disconnect; order a dish, pay for it and
// watch it cooked; and read what the page shows.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import {
  createTestContext,
  DATABASE_URL,
  REDIS_URL,
  waitFor,
  type TestContext,
} from './support/context.js';
import { createVhost, type TestVhost } from './support/amqp.js';
import { startServiceProcess, type ServiceProcess, expectCleanExit } from './support/process.js';
import { track } from './support/leaks.js';
import { startTcpGate } from './support/tcp-gate.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let ctx: TestContext;
let vhost: TestVhost;
let hub: ServiceProcess;
let browser: Browser;
let base: string;
const schema = () => `${ctx.schema}_demo`;

beforeAll(async () => {
  ctx = await createTestContext('demopage');
  vhost = await createVhost('demopage');
  hub = startServiceProcess(
    'services/hub/main.ts',
    {
      DATABASE_URL,
      DATABASE_SCHEMA: schema(),
      REDIS_URL,
      REDIS_KEY_PREFIX: ctx.keyPrefix,
      AMQP_URL: vhost.url,
      PORT: '0',
      ALLIO_SIM_PORT: '0',
      TENANT_IDP_PORT: '0',
      AUTH_PORT: '0',
      LOG_LEVEL: 'info',
      HUB_DEV_DIR: mkdtempSync(path.join(tmpdir(), 'hub-dev-')),
    },
    ['--simulators'],
  );
  // Start-up through tsx takes tens of seconds on a loaded 2-core machine.
  const port = await waitFor(
    () => /"page":"http:\/\/[^"]*:(\d+)\/demo\/"/.exec(hub.output())?.[1],
    90_000,
    'the demo page',
  ).catch((e: unknown) => {
    throw new Error(`${String(e)}; the hub printed:\n${hub.output().slice(-4_000)}`);
  });
  base = `http://127.0.0.1:${port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const untrack = track('chromium');
  browser.on('disconnected', untrack);
}, 150_000);
afterAll(async () => {
  await browser?.close();
  hub?.child.kill('SIGTERM');
  if (hub) await expectCleanExit(hub);
  await ctx.db.raw(`drop schema if exists "${schema()}" cascade`);
  await vhost?.close();
  await ctx?.close();
});

const stateOf = (page: Page, service: string) => page.locator(`#service-${service} .state`);
const button = (page: Page, service: string, name: string) =>
  page.locator(`#service-${service} button.${name}`);
const result = (page: Page, service: string) => page.locator(`#service-${service} .result`);

/** A new page whose console errors and failed or refused requests (a missing favicon, say) are kept. */
async function newPage(timeoutMs: number): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage();
  page.setDefaultTimeout(timeoutMs);
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
  });
  return { page, problems };
}

async function signIn(page: Page, tenant: string): Promise<void> {
  await page.fill('#tenant', tenant);
  await page.click('#sign-in');
  await page.locator('#connection', { hasText: 'Live' }).waitFor();
}

/** What another of the tenant's devices does: the tenant API with a token of its own. */
async function tenantApi(
  tenant: string,
  method: string,
  apiPath: string,
): Promise<Record<string, unknown>> {
  const { accessToken } = (await (
    await fetch(`${base}/demo/api/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tenant }),
    })
  ).json()) as { accessToken: string };
  const res = await fetch(`${base}${apiPath}`, {
    method,
    headers: {
      authorization: `Bearer ${accessToken}`,
      ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
    },
    ...(method === 'POST' ? { body: '{}' } : {}),
  });
  expect(res.status).toBeLessThan(300);
  return (await res.json()) as Record<string, unknown>;
}

test('a tenant signs in, connects intercom and barrier, opens them and disconnects, watching states change live, in words', async () => {
  const { page, problems } = await newPage(15_000);
  await page.goto(`${base}/demo/`);
  await expect(button(page, 'intercom', 'connect').isDisabled()).resolves.toBe(true);
  await expect(stateOf(page, 'intercom').textContent()).resolves.toBe('Not connected');
  const tenantName = `e2e-${Date.now().toString(36)}`;
  await signIn(page, tenantName);

  for (const service of ['intercom', 'barrier']) {
    await button(page, service, 'connect').click();
    // The state passes through connecting (pushed at once) to connected (the partner's reply, ~0.4 s).
    await page.locator(`#service-${service} .state[data-state=connected]`).waitFor();
    await expect(button(page, service, 'open').isEnabled()).resolves.toBe(true);
    await button(page, service, 'open').click();
    await page.locator(`#service-${service} .result[data-status=opened]`).waitFor();
    await expect(result(page, service).textContent()).resolves.toBe('Opened');
  }
  const log = await page.locator('#log').innerText();
  expect(log).toContain('Smart intercom: connected');
  expect(log).toContain('Smart intercom: opened');
  expect(log).toContain('Smart barrier: opened');

  await button(page, 'barrier', 'disconnect').click();
  await page.locator('#service-barrier .state[data-state=disconnected]').waitFor();
  await expect(stateOf(page, 'barrier').textContent()).resolves.toBe('Disconnected');
  await expect(stateOf(page, 'intercom').textContent()).resolves.toBe('Connected');
  await expect(button(page, 'barrier', 'open').isDisabled()).resolves.toBe(true);
  // The barrier's earlier "Opened" went with its connection; the intercom's stays.
  await expect(result(page, 'barrier').textContent()).resolves.toBe('');
  await expect(result(page, 'intercom').textContent()).resolves.toBe('Opened');

  // A reload signs in again and reads the states back over REST.
  await page.reload();
  await signIn(page, tenantName);
  await page.locator('#service-intercom .state[data-state=connected]').waitFor();
  await page.screenshot({ path: path.join(tmpdir(), 'hub-demo-page.png'), fullPage: true });
  await page.close();
  expect(problems).toEqual([]);
}, 90_000);

test('the page has a favicon: linked, served, and nothing it loads fails', async () => {
  const { page, problems } = await newPage(15_000);
  await page.goto(`${base}/demo/`);
  const href = await page.locator('link[rel=icon]').getAttribute('href');
  expect(href).toBe('/demo/favicon.svg');
  const icon = await page.request.get(`${base}${href}`);
  expect(icon.status()).toBe(200);
  expect(icon.headers()['content-type']).toContain('image/svg+xml');
  expect(await icon.text()).toContain('<svg');
  await page.close();
  expect(problems).toEqual([]);
}, 60_000);

test('after the connection drops, the page says so, then reads states and results again: nothing stale stays', async () => {
  // The page reaches the hub through a gate the test can shut: the network between them fails.
  const gate = await startTcpGate({ host: '127.0.0.1', port: Number(new URL(base).port) });
  const { page, problems } = await newPage(20_000);
  await page.goto(`http://${gate.address}/demo/`);
  const tenantName = `e2e-offline-${Date.now().toString(36)}`;
  await signIn(page, tenantName);
  await button(page, 'intercom', 'connect').click();
  await page.locator('#service-intercom .state[data-state=connected]').waitFor();
  await button(page, 'intercom', 'open').click();
  await page.locator('#service-intercom .result[data-status=opened]').waitFor();

  gate.shut();
  await page.locator('#connection', { hasText: 'Offline' }).waitFor();
  await expect(page.locator('body.stale').count()).resolves.toBe(1);
  // Meanwhile the tenant disconnects the intercom from another device; the page hears nothing of it.
  await tenantApi(tenantName, 'POST', '/v1/smart-home/subscriptions/intercom/disconnect');
  await waitFor(
    async () => {
      const { subscriptions } = (await tenantApi(
        tenantName,
        'GET',
        '/v1/smart-home/subscriptions',
      )) as { subscriptions: { service: string; state: string }[] };
      return subscriptions.find((s) => s.service === 'intercom')?.state === 'disconnected';
    },
    20_000,
    'the intercom disconnected',
  );

  gate.open();
  await page.locator('#connection', { hasText: 'Live' }).waitFor();
  await expect(stateOf(page, 'intercom').getAttribute('data-state')).resolves.toBe('disconnected');
  await expect(stateOf(page, 'intercom').textContent()).resolves.toBe('Disconnected');
  await expect(result(page, 'intercom').textContent()).resolves.toBe('');
  await expect(page.locator('body.stale').count()).resolves.toBe(0);
  await page.close();
  await gate.close();
  // Only the reconnection attempts while the gate was shut failed, in the network (no HTTP error).
  expect(problems.filter((p) => !/^console: WebSocket connection to .* failed/.test(p))).toEqual(
    [],
  );
}, 90_000);

test('a tenant orders a dish, pays with the test card and watches the robots cook it live', async () => {
  const { page, problems } = await newPage(20_000);
  await page.goto(`${base}/demo/`);
  await signIn(page, `e2e-kitchen-${Date.now().toString(36)}`);
  await page.locator('#menu button[data-dish=salad]').click();
  const row = page.locator('#orders tbody tr').first();
  await row.locator('.order-state[data-state=awaiting_payment]').waitFor();
  await expect(row.locator('.order-state').textContent()).resolves.toBe('Awaiting payment');
  await row.locator('button.pay').click();
  // Paid, queued at the robots, cooking, then produced: each pushed over the WebSocket (cooking takes 5 s).
  await row.locator('.production[data-status=cooking]').waitFor();
  await row.locator('.order-state[data-state=produced]').waitFor({ timeout: 30_000 });
  await expect(row.locator('.order-state').textContent()).resolves.toBe('Ready');
  await expect(row.locator('.production').textContent()).resolves.toBe('Done');
  await expect(row.locator('button.pay').isDisabled()).resolves.toBe(true);
  const log = await page.locator('#log').innerText();
  for (const line of [': paid', '(robots: queued)', '(robots: cooking)', ': ready']) {
    expect(log).toContain(line);
  }
  await page.screenshot({ path: path.join(tmpdir(), 'hub-demo-page-kitchen.png'), fullPage: true });
  await page.close();
  expect(problems).toEqual([]);
}, 90_000);
