// A partner's first hour against the hub, on the real servers: its command queue exists as soon as
// `hub apply` returns (and moments after the mq-bridge hears of a partner written elsewhere), two
// installations on one vhost keep their replies apart, and a developer gets a tenant token with
// `hub dev token`.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { applyResources } from '../services/cli/apply.js';
import { connectAmqp } from '../services/core/amqp.js';
import { WorkListener } from '../services/core/engine/notify.js';
import { FieldCipher } from '../services/core/field-cipher.js';
import { loadConfig } from '../services/core/config.js';
import { createMetrics } from '../services/core/metrics.js';
import { tenantApiEnv } from '../services/api/config.js';
import { createMqBridge } from '../services/mq-bridge/service.js';
import {
  COMMANDS_EXCHANGE,
  REPLIES_QUEUE,
  repliesQueue,
} from '../services/contracts/smart-home-topology.js';
import type { PartnerSimulator } from '../services/simulators/smart-home/partner.js';
import {
  createTestContext,
  DATABASE_URL,
  REDIS_URL,
  waitFor,
  type TestContext,
} from './support/context.js';
import { createVhost, type TestVhost } from './support/amqp.js';
import {
  call,
  connectedTenant,
  smartHomeEnv,
  startPartner,
  startStack,
  startTenantIdp,
  type Stack,
} from './support/smart-home.js';
import { runHubCli } from './support/tools.js';

/** Each `hub` run compiles the CLI with tsx: 10-15 s apiece on a loaded 2-core machine. */
const CLI_TEST_MS = 180_000;

const partnerYaml = (name: string, active = true) => `apiVersion: integration-hub.io/v1alpha1
kind: SmartHomePartner
metadata:
  name: ${name}
spec:
  services: [intercom]
  active: ${active}
`;

/** Whether a mandatory publish for `partner` on the commands exchange is routed to a queue (not returned). */
async function routed(url: string, partner: string): Promise<boolean> {
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createConfirmChannel();
    let returned = false;
    ch.on('return', () => (returned = true));
    ch.publish(COMMANDS_EXCHANGE, partner, Buffer.from('probe'), {
      mandatory: true,
      expiration: '1',
    });
    // basic.return arrives before the confirm of the same message.
    await ch.waitForConfirms();
    await ch.close();
    return !returned;
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Whether `queue` exists on the vhost: a passive declaration, on a channel of its own (a 404 closes it). */
async function queueExists(url: string, queue: string): Promise<boolean> {
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    try {
      await ch.checkQueue(queue);
      await ch.close();
      return true;
    } catch {
      return false;
    }
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Publishes a message for `partner` on the commands exchange and reads it back from `queue`, as the partner would. */
async function commandReaches(
  url: string,
  partner: string,
  queue: string,
): Promise<string | undefined> {
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createConfirmChannel();
    const body = `hello ${partner}`;
    ch.publish(COMMANDS_EXCHANGE, partner, Buffer.from(body), { mandatory: true });
    await ch.waitForConfirms();
    const got = await waitFor(
      async () => (await ch.get(queue, { noAck: true })) || undefined,
      10_000,
      'the command in the queue',
    );
    await ch.close();
    return got.content.toString() === body ? body : undefined;
  } finally {
    await conn.close().catch(() => undefined);
  }
}

describe("a partner's command queue after it is applied", () => {
  let ctx: TestContext;
  let vhost: TestVhost;
  let dir: string;

  beforeAll(async () => {
    ctx = await createTestContext('onboardq');
    vhost = await createVhost('onboardq');
    dir = await mkdtemp(path.join(tmpdir(), 'hub-onboard-'));
  });
  afterAll(async () => {
    await vhost?.close();
    await ctx?.close();
  });

  test(
    'hub apply declares the queue on RabbitMQ before it returns: the partner consumes it at once',
    async () => {
      const file = path.join(dir, 'intercom-vendor.yaml');
      await writeFile(file, partnerYaml('intercom-vendor'));
      expect(await queueExists(vhost.url, 'partner.intercom-vendor.commands')).toBe(false);
      const r = await runHubCli(DATABASE_URL, ctx.schema, ['apply', '-f', file], {
        AMQP_URL: vhost.url,
      });
      expect(r).toMatchObject({
        code: 0,
        stdout:
          'smartHomePartner/intercom-vendor created\ndeclared on RabbitMQ: partner.intercom-vendor.commands\n',
      });
      expect(await queueExists(vhost.url, 'partner.intercom-vendor.commands')).toBe(true);
      expect(
        await commandReaches(vhost.url, 'intercom-vendor', 'partner.intercom-vendor.commands'),
      ).toBe('hello intercom-vendor');

      // Retired: unbound as the operator does, the queue kept for draining.
      await writeFile(file, partnerYaml('intercom-vendor', false));
      const retired = await runHubCli(DATABASE_URL, ctx.schema, ['apply', '-f', file], {
        AMQP_URL: vhost.url,
      });
      expect(retired).toMatchObject({
        code: 0,
        stdout:
          'smartHomePartner/intercom-vendor configured\nunbound on RabbitMQ (inactive): partner.intercom-vendor.commands\n',
      });
      expect(await routed(vhost.url, 'intercom-vendor')).toBe(false);
      expect(await queueExists(vhost.url, 'partner.intercom-vendor.commands')).toBe(true);
    },
    CLI_TEST_MS,
  );

  test(
    'hub apply with RabbitMQ unreachable reports it and fails, with the partner applied (a second apply declares it)',
    async () => {
      const file = path.join(dir, 'gate-vendor.yaml');
      await writeFile(file, partnerYaml('gate-vendor'));
      const r = await runHubCli(DATABASE_URL, ctx.schema, ['apply', '-f', file], {
        AMQP_URL: 'amqp://guest:guest@127.0.0.1:1/',
      });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('smartHomePartner/gate-vendor created\n');
      expect(r.stderr).toContain('declaring the partner queues on RabbitMQ failed');
      const again = await runHubCli(DATABASE_URL, ctx.schema, ['apply', '-f', file], {
        AMQP_URL: vhost.url,
      });
      expect(again).toMatchObject({
        code: 0,
        stdout:
          'smartHomePartner/gate-vendor configured\ndeclared on RabbitMQ: partner.gate-vendor.commands\n',
      });
      expect(await queueExists(vhost.url, 'partner.gate-vendor.commands')).toBe(true);
    },
    CLI_TEST_MS,
  );

  test('a running mq-bridge declares a partner written without RabbitMQ within moments, not at its next refresh', async () => {
    const idp = await startTenantIdp();
    const config = loadConfig(tenantApiEnv, smartHomeEnv(ctx, vhost.url, idp));
    const conn = connectAmqp(vhost.url, ctx.logger, { name: 'onboarding bridge' });
    const listener = new WorkListener(DATABASE_URL, ctx.schema, ctx.logger);
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    const bridge = createMqBridge({
      db: ctx.db,
      redis,
      amqp: conn,
      cipher: new FieldCipher(config.DATA_ENCRYPTION_KEYS),
      config,
      logger: ctx.logger,
      metrics: createMetrics(),
      owner: 'onboarding',
      listener,
      pollMaxMs: 100,
      // Ten minutes: only the notification can declare the queue within the test.
      partnerRefreshMs: 600_000,
    });
    try {
      await listener.start();
      await bridge.start();
      const { partnerQueues } = await applyResources(ctx.db, [
        {
          source: 'test',
          index: 1,
          doc: {
            apiVersion: 'integration-hub.io/v1alpha1',
            kind: 'SmartHomePartner',
            metadata: { name: 'late-vendor' },
            spec: { services: ['barrier'] },
          },
        },
      ]);
      expect(partnerQueues).toEqual({
        declare: [{ name: 'late-vendor', commandQueue: 'partner.late-vendor.commands' }],
        unbind: [],
      });
      await waitFor(
        () => queueExists(vhost.url, 'partner.late-vendor.commands'),
        15_000,
        'the bridge to declare the queue',
      );
      expect(await commandReaches(vhost.url, 'late-vendor', 'partner.late-vendor.commands')).toBe(
        'hello late-vendor',
      );
    } finally {
      await bridge.stop(5_000);
      await listener.stop();
      await conn.close();
      await redis.quit();
      await idp.close();
    }
  });
});

describe('two installations on one vhost', () => {
  const OPENS = 12;
  let vhost: TestVhost;
  let north: Stack;
  let south: Stack;
  let partner: PartnerSimulator;

  beforeAll(async () => {
    vhost = await createVhost('twohubs');
    // The same partner name in both hubs: the partner serves both from one command queue.
    const env = (installation: string) => ({
      HUB_INSTALLATION: installation,
      SMART_HOME_COMMAND_TTL_MS: '20000',
    });
    north = await startStack('north', { amqpUrl: vhost.url, env: env('north'), partner: false });
    south = await startStack('south', { amqpUrl: vhost.url, env: env('south'), partner: false });
    partner = await startPartner(north.ctx, vhost.url, north.partnerInfo, { delayMs: 20 });
  }, 60_000);
  afterAll(async () => {
    await partner?.stop();
    await north?.close();
    await south?.close();
    await vhost?.close();
  });

  test('each hub consumes a reply queue of its own, and none consumes the unnamed one', async () => {
    expect(await queueExists(vhost.url, repliesQueue('north'))).toBe(true);
    expect(await queueExists(vhost.url, repliesQueue('south'))).toBe(true);
    expect(await queueExists(vhost.url, REPLIES_QUEUE)).toBe(false);
  });

  test('opens on both hubs all get their own partner replies: none times out', async () => {
    const tenants = await Promise.all([connectedTenant(north), connectedTenant(south)]);
    const opens = await Promise.all(
      [north, south].flatMap((stack, i) =>
        Array.from({ length: OPENS }, async () => {
          const res = await call(
            stack.api.url,
            'POST',
            '/v1/smart-home/subscriptions/intercom/open',
            tenants[i]!.token,
          );
          expect(res.status).toBe(202);
          return { stack, token: tenants[i]!.token, id: res.body.commandId as string };
        }),
      ),
    );
    const statuses = await Promise.all(
      opens.map((o) =>
        waitFor(
          async () => {
            const status = (
              await call(o.stack.api.url, 'GET', `/v1/smart-home/commands/${o.id}`, o.token)
            ).body.status as string;
            return status === 'pending' ? undefined : status;
          },
          30_000,
          'the open settled',
        ),
      ),
    );
    expect(statuses).toEqual(Array(2 * OPENS).fill('opened'));
  }, 90_000);

  test('a bad HUB_INSTALLATION is refused with the rule it breaks', () => {
    expect(() =>
      loadConfig(
        tenantApiEnv,
        smartHomeEnv(north.ctx, vhost.url, north.idp, { HUB_INSTALLATION: 'North Hub' }),
      ),
    ).toThrow(/HUB_INSTALLATION.*lower-case/s);
  });
});

describe('hub dev token', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack('devtoken', { bridge: false, partner: false });
  });
  afterAll(async () => {
    await stack?.close();
  });

  test(
    'prints a tenant token from the development identity provider that the api accepts',
    async () => {
      const r = await runHubCli(DATABASE_URL, stack.ctx.schema, [
        'dev',
        'token',
        '--tenant',
        'flat-117',
        '--idp-url',
        stack.idp.issuer,
      ]);
      expect(r.code).toBe(0);
      const token = r.stdout.trim();
      const res = await call(stack.api.url, 'GET', '/v1/smart-home/subscriptions', token);
      expect(res.status).toBe(200);
      expect(
        await call(stack.api.url, 'GET', '/v1/smart-home/subscriptions', 'not-a-token'),
      ).toMatchObject({ status: 401 });
    },
    CLI_TEST_MS,
  );

  test(
    'a bad tenant id, an oversized body and a missing provider are refused with what to fix',
    async () => {
      const bad = await runHubCli(DATABASE_URL, stack.ctx.schema, [
        'dev',
        'token',
        '--tenant',
        'flat 117',
        '--idp-url',
        stack.idp.issuer,
      ]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('refused (400): tenant must be');
      const big = await fetch(`${stack.idp.issuer}/dev/token`, {
        method: 'POST',
        body: JSON.stringify({ tenant: 'x', pad: 'y'.repeat(5000) }),
      });
      expect(big.status).toBe(400);
      expect(await big.json()).toMatchObject({
        error: 'invalid_request',
        message: expect.stringContaining('larger than 1024 bytes'),
      });
      // A web page on another origin cannot read a minted token: no CORS header on /dev/token.
      const minted = await fetch(`${stack.idp.issuer}/dev/token`, {
        method: 'POST',
        headers: { origin: 'https://elsewhere.example' },
        body: JSON.stringify({ tenant: 'flat-117' }),
      });
      expect(minted.status).toBe(200);
      expect(minted.headers.get('access-control-allow-origin')).toBeNull();
      const ttl = await fetch(`${stack.idp.issuer}/dev/token`, {
        method: 'POST',
        body: JSON.stringify({ tenant: 'flat-117', ttlSeconds: 10 }),
      });
      expect(await ttl.json()).toMatchObject({
        error: 'invalid_request',
        message: 'ttlSeconds must be a whole number from 60 to 86400',
      });
      const none = await runHubCli(DATABASE_URL, stack.ctx.schema, [
        'dev',
        'token',
        '--tenant',
        'flat-117',
        '--idp-url',
        'http://127.0.0.1:1',
      ]);
      expect(none.code).toBe(1);
      expect(none.stderr).toContain(
        'no development identity provider answers at http://127.0.0.1:1',
      );
    },
    CLI_TEST_MS,
  );
});
