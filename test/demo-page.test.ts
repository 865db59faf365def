// The tenant demo page of `npm start -- --simulators`, end to end in real headless Chromium: sign
// in, connect the intercom and the barrier, open them, disconnect; order a dish, pay for it and
// watch it cooked; and read what the page shows.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createTestContext, DATABASE_URL, REDIS_URL, waitFor, type TestContext } from './support/context.js';
import { createVhost, type TestVhost } from './support/amqp.js';
import { startServiceProcess, type ServiceProcess, expectCleanExit } from './support/process.js';
import { track } from './support/leaks.js';

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
  hub = startServiceProcess('services/hub/main.ts', {
    DATABASE_URL, DATABASE_SCHEMA: schema(), REDIS_URL, REDIS_KEY_PREFIX: ctx.keyPrefix, AMQP_URL: vhost.url,
    PORT: '0', ALLIO_SIM_PORT: '0', TENANT_IDP_PORT: '0', LOG_LEVEL: 'info',
    HUB_DEV_DIR: mkdtempSync(path.join(tmpdir(), 'hub-dev-')),
  }, ['--simulators']);
  const port = await waitFor(() => /"page":"http:\/\/[^"]*:(\d+)\/demo\/"/.exec(hub.output())?.[1], 30_000, 'the demo page');
  base = `http://127.0.0.1:${port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const untrack = track('chromium');
  browser.on('disconnected', untrack);
}, 60_000);
afterAll(async () => {
  await browser?.close();
  hub?.child.kill('SIGTERM');
  if (hub) await expectCleanExit(hub);
  await ctx.db.raw(`drop schema if exists "${schema()}" cascade`);
  await vhost?.close();
  await ctx?.close();
});

const stateOf = (page: Page, service: string) => page.locator(`#service-${service} .state`);
const button = (page: Page, service: string, name: string) => page.locator(`#service-${service} button.${name}`);

test('a tenant signs in, connects intercom and barrier, opens them and disconnects, watching states change live', async () => {
  const page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(`${base}/demo/`);
  await expect(button(page, 'intercom', 'connect').isDisabled()).resolves.toBe(true);
  const tenantName = `e2e-${Date.now().toString(36)}`;
  await page.fill('#tenant', tenantName);
  await page.click('#sign-in');
  await page.locator('#connection', { hasText: 'live' }).waitFor();

  for (const service of ['intercom', 'barrier']) {
    await button(page, service, 'connect').click();
    // The state passes through connecting (pushed at once) to connected (the partner's reply, ~0.4 s).
    await page.locator(`#service-${service} .state[data-state=connected]`).waitFor();
    await expect(button(page, service, 'open').isEnabled()).resolves.toBe(true);
    await button(page, service, 'open').click();
    await page.locator(`#service-${service} .result`, { hasText: 'opened' }).waitFor();
  }
  const log = await page.locator('#log').innerText();
  expect(log).toContain('intercom: opened');
  expect(log).toContain('barrier: opened');

  await button(page, 'barrier', 'disconnect').click();
  await page.locator('#service-barrier .state[data-state=disconnected]').waitFor();
  await expect(stateOf(page, 'intercom').textContent()).resolves.toBe('connected');
  await expect(button(page, 'barrier', 'open').isDisabled()).resolves.toBe(true);

  // A reload signs in again and reads the states back over REST.
  await page.reload();
  await page.fill('#tenant', tenantName);
  await page.click('#sign-in');
  await page.locator('#service-intercom .state[data-state=connected]').waitFor();
  await page.screenshot({ path: path.join(tmpdir(), 'hub-demo-page.png'), fullPage: true });
  await page.close();
}, 60_000);

test('a tenant orders a dish, pays with the test card and watches the robots cook it live', async () => {
  const page = await browser.newPage();
  page.setDefaultTimeout(20_000);
  await page.goto(`${base}/demo/`);
  await page.fill('#tenant', `e2e-kitchen-${Date.now().toString(36)}`);
  await page.click('#sign-in');
  await page.locator('#connection', { hasText: 'live' }).waitFor();
  await page.locator('#menu button[data-dish=salad]').click();
  const row = page.locator('#orders tbody tr').first();
  await row.locator('.order-state[data-state=awaiting_payment]').waitFor();
  await row.locator('button.pay').click();
  // Paid, queued at the robots, cooking, then produced: each pushed over the WebSocket (cooking takes 5 s).
  await row.locator('.production', { hasText: 'cooking' }).waitFor();
  await row.locator('.order-state[data-state=produced]').waitFor({ timeout: 30_000 });
  await expect(row.locator('.production').textContent()).resolves.toBe('done');
  await expect(row.locator('button.pay').isDisabled()).resolves.toBe(true);
  const log = await page.locator('#log').innerText();
  for (const line of ['paid', '(robots: queued)', '(robots: cooking)', 'produced']) expect(log).toContain(line);
  await page.screenshot({ path: path.join(tmpdir(), 'hub-demo-page-kitchen.png'), fullPage: true });
  await page.close();
}, 60_000);
