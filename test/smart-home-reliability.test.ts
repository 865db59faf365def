// Smart home when things go wrong, on the real servers: a silent partner (re-sends with growing
// delays, then failure, then operator replay), a bridge that stops while a reply is in flight, and
// two api processes where the socket lives on one and the command goes through the other.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { replayFailedRequests } from '../services/domains/smart-home/requests.js';
import { DATABASE_URL, waitFor, type TestContext } from './support/context.js';
import { queueDepth, type TestVhost } from './support/amqp.js';
import { REPLIES_QUEUE } from '../services/contracts/smart-home-topology.js';
import {
  expectCleanExit,
  listeningPort,
  startServiceProcess,
  type ServiceProcess,
} from './support/process.js';
import {
  call,
  openSocket,
  PERSONAL,
  replyAsPartner,
  smartHomeEnv,
  startBridge,
  startStack,
  type ApiInstance,
  type BridgeInstance,
  type Stack,
  type TenantSocket,
} from './support/smart-home.js';
import type { TenantIdp } from '../services/simulators/tenant-idp/server.js';
import type { PartnerSimulator } from '../services/simulators/smart-home/partner.js';

const REPLY_TIMEOUT_MS = 300;
const env = { SMART_HOME_REPLY_TIMEOUT_MS: String(REPLY_TIMEOUT_MS), SMART_HOME_MAX_ATTEMPTS: '3' };
let ctx: TestContext;
let vhost: TestVhost;
let idp: TenantIdp;
let api: ApiInstance;
let bridge: BridgeInstance;
let partner: PartnerSimulator;
let stack: Stack;

beforeAll(async () => {
  stack = await startStack('shreliab', { env });
  ({ ctx, vhost, idp, api } = stack);
  bridge = stack.bridge as BridgeInstance;
  partner = stack.partner as PartnerSimulator;
});
afterAll(async () => {
  stack.bridge = bridge;
  await stack?.close();
});

const tenant = () => `tenant-${Math.random().toString(36).slice(2, 10)}`;

/**
 * A new tenant with its socket open whose intercom connect failed because the partner never
 * replied; the partner is left silent (the caller sets it back and closes the socket).
 */
async function failedConnect(): Promise<{ token: string; socket: TenantSocket; id: string }> {
  const token = await idp.issue(tenant());
  const socket = await openSocket(api.url, token);
  partner.behaviour.silent = true;
  try {
    const res = await call(
      api.url,
      'POST',
      '/v1/smart-home/subscriptions/intercom/connect',
      token,
      { personalData: PERSONAL },
    );
    const id = res.body.request.id as string;
    await socket.next(
      (e) =>
        e.type === 'subscription.changed' &&
        (e.subscription as { state: string }).state === 'failed',
      15_000,
      'failed pushed',
    );
    return { token, socket, id };
  } catch (thrown) {
    partner.behaviour.silent = false;
    await socket.close();
    throw thrown;
  }
}

describe('a partner that stays silent', () => {
  test('the request is re-sent with growing delays, fails after the last attempt, the tenant sees it, and an operator replay completes it', async () => {
    const { token, socket, id } = await failedConnect();
    try {
      const sends = partner.received.filter((r) => r.command.correlationId === id);
      expect(sends.map((s) => s.command.attempt)).toEqual([1, 2, 3]);
      expect(new Set(sends.map((s) => s.command.messageId)).size).toBe(3);
      const gaps = sends.slice(1).map((s, i) => s.receivedAt - (sends[i]?.receivedAt ?? 0));
      // Deadlines of 300 ms then 600 ms, each +0–20 %: the second wait is clearly longer.
      expect(gaps[0]).toBeGreaterThanOrEqual(REPLY_TIMEOUT_MS * 0.9);
      expect(gaps[1]).toBeGreaterThan((gaps[0] ?? 0) * 1.3);
      const row = await ctx.db('smart_home_requests').where({ request_uuid: id }).first();
      expect(row).toMatchObject({ state: 'failed', status: 3, attempts: 4 });
      expect(row.last_error).toMatch(/did not reply to 3 attempts/);
      const list = await call(api.url, 'GET', '/v1/smart-home/subscriptions', token);
      expect(list.body.subscriptions[0]).toMatchObject({
        state: 'failed',
        lastRequest: { id, state: 'failed', failureCode: 'partner_unavailable' },
      });
      // The bridge's own error text is for operators (`hub smart-home list`), not for the tenant.
      expect(JSON.stringify(list.body)).not.toMatch(/did not reply/);

      partner.behaviour.silent = false;
      expect(await replayFailedRequests(ctx.db, { requestIds: [id] })).toEqual([id]);
      await socket.next(
        (e) =>
          e.type === 'subscription.changed' &&
          (e.subscription as { state: string }).state === 'connected',
        10_000,
        'connected after replay',
      );
      expect((await ctx.db('smart_home_requests').where({ request_uuid: id }).first()).state).toBe(
        'complete',
      );
      expect(await replayFailedRequests(ctx.db, { requestIds: [id] })).toEqual([]);
    } finally {
      partner.behaviour.silent = false;
      await socket.close();
    }
  });
});

describe('a reply after the request failed for want of one', () => {
  test('the partner acted after all: its late success connects the subscription and is pushed; a late reply to a superseded request changes nothing', async () => {
    const { token, socket, id } = await failedConnect();
    try {
      const command = partner.received
        .filter((r) => r.command.correlationId === id)
        .at(-1)?.command;
      if (!command) throw new Error('the partner received no command');
      await replyAsPartner(stack, command, 'success');
      await socket.next(
        (e) =>
          e.type === 'subscription.changed' &&
          (e.subscription as { state: string }).state === 'connected',
        10_000,
        'connected by the late reply',
      );
      expect(await ctx.db('smart_home_requests').where({ request_uuid: id }).first()).toMatchObject(
        { state: 'complete', status: 2 },
      );

      // A newer request supersedes it: another late reply to the old one is a duplicate.
      partner.behaviour.silent = false;
      const off = await call(
        api.url,
        'POST',
        '/v1/smart-home/subscriptions/intercom/disconnect',
        token,
      );
      expect(off.status).toBe(202);
      await socket.next(
        (e) =>
          e.type === 'subscription.changed' &&
          (e.subscription as { state: string }).state === 'disconnected',
        10_000,
        'disconnected',
      );
      await replyAsPartner(stack, command, 'success');
      await new Promise((resolve) => setTimeout(resolve, 500));
      const list = await call(api.url, 'GET', '/v1/smart-home/subscriptions', token);
      expect(list.body.subscriptions[0]).toMatchObject({ state: 'disconnected' });
    } finally {
      partner.behaviour.silent = false;
      await socket.close();
    }
  });
});

describe('nothing is lost', () => {
  test('a reply that arrives while the bridge is down is applied when a bridge comes back', async () => {
    const t = tenant();
    const token = await idp.issue(t);
    partner.behaviour.delayMs = 150;
    let stopped = false;
    try {
      const res = await call(
        api.url,
        'POST',
        '/v1/smart-home/subscriptions/barrier/connect',
        token,
        { personalData: PERSONAL },
      );
      const id = res.body.request.id as string;
      await waitFor(
        () => partner.received.some((r) => r.command.correlationId === id),
        10_000,
        'command received',
      );
      await bridge.close();
      stopped = true;
      // The partner's reply waits in the durable queue while no bridge consumes it; from now on the
      // partner answers nothing, so only that queued reply can complete the request.
      await waitFor(
        async () => (await queueDepth(vhost.url, REPLIES_QUEUE)) === 1,
        10_000,
        'the reply queued',
      );
      partner.behaviour.silent = true;
      expect((await ctx.db('smart_home_requests').where({ request_uuid: id }).first()).state).toBe(
        'requested',
      );
      bridge = await startBridge(ctx, vhost.url, idp, ctx.logger, env);
      stopped = false;
      await waitFor(
        async () =>
          (await ctx.db('smart_home_requests').where({ request_uuid: id }).first()).state ===
          'complete',
        10_000,
        'applied after restart',
      );
      expect(await queueDepth(vhost.url, REPLIES_QUEUE)).toBe(0);
    } finally {
      partner.behaviour.delayMs = 0;
      partner.behaviour.silent = false;
      if (stopped) bridge = await startBridge(ctx, vhost.url, idp, ctx.logger, env);
    }
  });
});

describe('several api replicas', () => {
  let a: ServiceProcess;
  let b: ServiceProcess;
  let urlA: string;
  let urlB: string;

  beforeAll(async () => {
    const processEnv = {
      ...smartHomeEnv(ctx, vhost.url, idp, env),
      DATABASE_URL,
      DATABASE_SCHEMA: ctx.schema,
      PORT: '0',
      LOG_LEVEL: 'info',
    };
    a = startServiceProcess('services/api/main.ts', { ...processEnv, INSTANCE_ID: 'api-a' });
    b = startServiceProcess('services/api/main.ts', { ...processEnv, INSTANCE_ID: 'api-b' });
    const [portA, portB] = await Promise.all([listeningPort(a, 30_000), listeningPort(b, 30_000)]);
    [urlA, urlB] = [`http://127.0.0.1:${portA}`, `http://127.0.0.1:${portB}`];
  }, 40_000);
  afterAll(async () => {
    for (const p of [a, b]) p?.child.kill('SIGTERM');
    for (const p of [a, b]) if (p) await expectCleanExit(p);
  });

  test('the socket lives on one api process, the command goes through the other, the bridge consumes the reply, and the result reaches the socket', async () => {
    const t = tenant();
    const token = await idp.issue(t);
    const socket = await openSocket(urlA, token);
    try {
      const res = await call(urlB, 'POST', '/v1/smart-home/subscriptions/intercom/connect', token, {
        personalData: PERSONAL,
      });
      expect(res.status).toBe(202);
      await socket.next(
        (e) =>
          e.type === 'subscription.changed' &&
          (e.subscription as { state: string }).state === 'connected',
        10_000,
        'connected on A',
      );
      const open = await call(urlB, 'POST', '/v1/smart-home/subscriptions/intercom/open', token);
      expect(open.status).toBe(202);
      const result = await socket.next(
        (e) => e.type === 'command.result' && e.commandId === open.body.commandId,
        10_000,
        'result on A',
      );
      expect(result.status).toBe('opened');
      expect(
        (await call(urlA, 'GET', `/v1/smart-home/commands/${open.body.commandId}`, token)).body
          .status,
      ).toBe('opened');
      const ready = await fetch(`${urlA}/readyz`);
      expect(ready.status).toBe(200);
    } catch (e) {
      // Both processes' logs say which hop lost the event.
      console.log(`api A:\n${a.output()}\napi B:\n${b.output()}`);
      throw e;
    } finally {
      await socket.close();
    }
  });
});
