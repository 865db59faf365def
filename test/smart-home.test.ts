// Smart home end to end on the real servers: tenant REST and WebSocket, the bridge's reconciler
// and reply consumer on RabbitMQ, smart-home-cache in Redis, and a partner simulator.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Writable } from 'node:stream';
import { createApiKey } from '../services/core/auth/api-keys.js';
import { createLogger } from '../services/core/logger.js';
import { connectAmqp } from '../services/core/amqp.js';
import type { ConfirmChannel } from 'amqplib';
import {
  REPLIES_EXCHANGE,
  DEAD_LETTER_QUEUE,
  REPLIES_QUEUE,
} from '../services/contracts/smart-home-topology.js';
import { buildReply, type CommandMessage } from '../services/contracts/smart-home-messages.js';
import { waitFor, type TestContext } from './support/context.js';
import { queueDepth, type TestVhost } from './support/amqp.js';
import {
  call,
  openSocket,
  PERSONAL,
  startApi,
  startStack,
  startTenantIdp,
  type ApiInstance,
  type BridgeInstance,
  type Stack,
} from './support/smart-home.js';
import type { TenantIdp } from '../services/simulators/tenant-idp/server.js';
import type { PartnerSimulator } from '../services/simulators/smart-home/partner.js';
import { listedIssues, MAX_ERROR_BYTES, MAX_LISTED_ISSUES, timedPost } from './support/hostile.js';

let ctx: TestContext;
let vhost: TestVhost;
let idp: TenantIdp;
let api: ApiInstance;
let bridge: BridgeInstance;
let partner: PartnerSimulator;
let acme: { name: string; commandQueue: string };
let stack: Stack;
const logLines: string[] = [];

beforeAll(async () => {
  // Every log line of the api and the bridge is kept, to prove personal data never reach them.
  const logger = createLogger(
    { level: 'debug', name: 'api' },
    new Writable({
      write(chunk, _e, cb) {
        logLines.push(String(chunk));
        cb();
      },
    }),
  );
  stack = await startStack('smarthome', { logger, partner: { delayMs: 20 } });
  ({ ctx, vhost, idp, api, partnerInfo: acme } = stack);
  bridge = stack.bridge as BridgeInstance;
  partner = stack.partner as PartnerSimulator;
});
afterAll(async () => {
  await stack?.close();
});

const tenant = () => `tenant-${Math.random().toString(36).slice(2, 10)}`;
const repliesOf = async (b: BridgeInstance, result: string) => {
  const m = await b.metrics.registry.getSingleMetric('hub_smart_home_replies_total')?.get();
  return (m?.values ?? [])
    .filter((v) => v.labels.result === result)
    .reduce((n, v) => n + v.value, 0);
};

/** Publishes a raw message on the replies exchange as partner `routingKey` would. */
async function publishRaw(
  routingKey: string,
  body: Buffer | string,
  type = 'subscription.connect.result',
) {
  const conn = connectAmqp(vhost.url, ctx.logger, { name: 'test publisher' });
  const ch = conn.createChannel({ confirm: true });
  try {
    await ch.publish(
      REPLIES_EXCHANGE,
      routingKey,
      Buffer.isBuffer(body) ? body : Buffer.from(body),
      { persistent: true, type },
    );
  } finally {
    await ch.close();
    await conn.close();
  }
}

async function connect(t: string, token: string, service = 'intercom') {
  const res = await call(
    api.url,
    'POST',
    `/v1/smart-home/subscriptions/${service}/connect`,
    token,
    { personalData: PERSONAL, biometricsConsent: service === 'intercom' },
  );
  expect(res.status).toBe(202);
  await waitFor(
    async () => {
      const s = await call(api.url, 'GET', '/v1/smart-home/subscriptions', token);
      return s.body.subscriptions.find(
        (x: { service: string; state: string }) => x.service === service && x.state === 'connected',
      );
    },
    10_000,
    `${t} ${service} connected`,
  );
  return res.body;
}

describe('subscriptions', () => {
  test('a connect request goes ready_for_request -> requested -> complete, the tenant sees connected live, personal data stay encrypted', async () => {
    const t = tenant();
    const token = await idp.issue(t);
    const socket = await openSocket(api.url, token);
    try {
      const res = await call(
        api.url,
        'POST',
        '/v1/smart-home/subscriptions/intercom/connect',
        token,
        { personalData: PERSONAL, biometricsConsent: true },
      );
      expect(res.status).toBe(202);
      expect(res.body.subscription).toMatchObject({ service: 'intercom', state: 'connecting' });
      expect(res.body.request).toMatchObject({ kind: 'connect', state: 'ready_for_request' });
      const requestId = res.body.request.id as string;

      await socket.next(
        (e) =>
          e.type === 'subscription.changed' &&
          (e.subscription as { state: string }).state === 'connected',
        10_000,
        'connected pushed',
      );
      const row = await ctx.db('smart_home_requests').where({ request_uuid: requestId }).first();
      expect(row).toMatchObject({ state: 'complete', status: 2, attempts: 1 });
      expect(row.requested_at).toBeInstanceOf(Date);
      expect(Buffer.isBuffer(row.personal_data)).toBe(true);
      expect(row.personal_data.toString('latin1')).not.toContain(PERSONAL.fullName);

      const sent = partner.received.find((r) => r.command.correlationId === requestId)
        ?.command as Extract<CommandMessage, { type: 'subscription.connect' }>;
      expect(sent.type).toBe('subscription.connect');
      expect(sent.payload).toEqual({ personalData: PERSONAL, biometricsConsent: true });
      expect(sent.tenantRef).not.toBe(t);

      const list = await call(api.url, 'GET', '/v1/smart-home/subscriptions', token);
      expect(list.body.subscriptions).toEqual([
        expect.objectContaining({
          service: 'intercom',
          state: 'connected',
          lastRequest: expect.objectContaining({ id: requestId, state: 'complete', attempts: 1 }),
        }),
      ]);
      expect(logLines.join('')).not.toContain(PERSONAL.fullName);
      expect(logLines.join('')).not.toContain(PERSONAL.phone);
    } finally {
      await socket.close();
    }
  });

  test('disconnecting ends in disconnected and erases the personal data', async () => {
    const t = tenant();
    const token = await idp.issue(t);
    await connect(t, token, 'barrier');
    const res = await call(
      api.url,
      'POST',
      '/v1/smart-home/subscriptions/barrier/disconnect',
      token,
    );
    expect(res.status).toBe(202);
    expect(res.body.subscription.state).toBe('disconnecting');
    await waitFor(
      async () =>
        (await call(api.url, 'GET', '/v1/smart-home/subscriptions', token)).body.subscriptions[0]
          ?.state === 'disconnected',
      10_000,
      'disconnected',
    );
    const rows = await ctx.db('smart_home_requests').where({ tenant_id: t });
    expect(rows).toHaveLength(2);
    expect(rows.every((r: { personal_data: unknown }) => r.personal_data === null)).toBe(true);
  });

  test('a second connect while one is in progress or connected is refused with 409 and changes nothing', async () => {
    const t = tenant();
    const token = await idp.issue(t);
    await connect(t, token);
    const again = await call(
      api.url,
      'POST',
      '/v1/smart-home/subscriptions/intercom/connect',
      token,
      { personalData: PERSONAL },
    );
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('already_connected');
    expect(
      await ctx.db('smart_home_requests').where({ tenant_id: t }).count('* as n').first(),
    ).toEqual({ n: '1' });
  });

  test('a repeated Idempotency-Key returns the first request and inserts nothing', async () => {
    const t = tenant();
    const token = await idp.issue(t);
    const headers = { 'idempotency-key': `key-${t}` };
    const first = await call(
      api.url,
      'POST',
      '/v1/smart-home/subscriptions/barrier/connect',
      token,
      { personalData: PERSONAL },
      headers,
    );
    const second = await call(
      api.url,
      'POST',
      '/v1/smart-home/subscriptions/barrier/connect',
      token,
      { personalData: PERSONAL },
      headers,
    );
    expect(second.status).toBe(202);
    expect(second.body.request.id).toBe(first.body.request.id);
    expect(
      await ctx.db('smart_home_requests').where({ tenant_id: t }).count('* as n').first(),
    ).toEqual({ n: '1' });
  });

  test('concurrent first requests of one tenant create one request: the others are refused, or answered with it when they share a key', async () => {
    const t = tenant();
    const token = await idp.issue(t);
    const post = (headers: Record<string, string> = {}) =>
      call(
        api.url,
        'POST',
        '/v1/smart-home/subscriptions/barrier/connect',
        token,
        { personalData: PERSONAL },
        headers,
      );
    const racing = await Promise.all(Array.from({ length: 6 }, () => post()));
    expect(racing.map((r) => r.status).sort()).toEqual([202, 409, 409, 409, 409, 409]);
    expect(
      racing
        .filter((r) => r.status === 409)
        .every((r) => r.body.error.code === 'request_in_progress'),
    ).toBe(true);

    const u = tenant();
    const tokenU = await idp.issue(u);
    const keyed = await Promise.all(
      Array.from({ length: 6 }, () =>
        call(
          api.url,
          'POST',
          '/v1/smart-home/subscriptions/intercom/connect',
          tokenU,
          { personalData: PERSONAL },
          { 'idempotency-key': `race-${u}` },
        ),
      ),
    );
    expect(keyed.map((r) => r.status)).toEqual([202, 202, 202, 202, 202, 202]);
    expect(new Set(keyed.map((r) => r.body.request.id)).size).toBe(1);
    const reused = await call(
      api.url,
      'POST',
      '/v1/smart-home/subscriptions/intercom/disconnect',
      tokenU,
      undefined,
      { 'idempotency-key': `race-${u}` },
    );
    expect([reused.status, reused.body.error.code]).toEqual([422, 'idempotency_key_reused']);
    expect(
      await ctx.db('smart_home_requests').whereIn('tenant_id', [t, u]).count('* as n').first(),
    ).toEqual({ n: '2' });
  });

  test('invalid bodies are answered 422 with each field, unknown services 404, and nothing is stored', async () => {
    const t = tenant();
    const token = await idp.issue(t);
    const bad = await call(
      api.url,
      'POST',
      '/v1/smart-home/subscriptions/intercom/connect',
      token,
      { personalData: { fullName: '', phone: 'call me', apartment: '1' }, extra: 1 },
    );
    expect(bad.status).toBe(422);
    expect(bad.body.error.code).toBe('invalid_body');
    expect(bad.body.error.details.map((d: { path: string }) => d.path)).toEqual(
      expect.arrayContaining(['personalData.fullName', 'personalData.phone']),
    );
    const bio = await call(api.url, 'POST', '/v1/smart-home/subscriptions/barrier/connect', token, {
      personalData: PERSONAL,
      biometricsConsent: true,
    });
    expect(bio.status).toBe(422);
    const unknown = await call(
      api.url,
      'POST',
      '/v1/smart-home/subscriptions/sauna/connect',
      token,
      { personalData: PERSONAL },
    );
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('unknown_service');
    expect(
      await ctx.db('smart_home_subscriptions').where({ tenant_id: t }).count('* as n').first(),
    ).toEqual({ n: '0' });
  });
});

describe('authentication and isolation', () => {
  test('no token, an expired token, a wrong audience and a foreign signature are refused with 401', async () => {
    const path = '/v1/smart-home/subscriptions';
    const none = await call(api.url, 'GET', path, undefined);
    expect([none.status, none.body.error.code]).toEqual([401, 'unauthenticated']);
    const expired = await call(api.url, 'GET', path, await idp.issue('x', { ttlSeconds: -60 }));
    expect([expired.status, expired.body.error.code]).toEqual([401, 'token_expired']);
    const aud = await call(
      api.url,
      'GET',
      path,
      await idp.issue('x', { audience: 'someone-else' }),
    );
    expect([aud.status, aud.body.error.code]).toEqual([401, 'invalid_token']);
    const other = await startTenantIdp();
    try {
      const forged = await call(api.url, 'GET', path, await other.issue('x'));
      expect(forged.status).toBe(401);
    } finally {
      await other.close();
    }
    await expect(openSocket(api.url, 'not-a-jwt')).rejects.toThrow(/401/);
  });

  test("a machine client with an API key is refused: every smart-home operation is a tenant's", async () => {
    const { key } = await createApiKey(ctx.db, 'back office', [
      'kitchen-admin',
      'kitchen-operator',
    ]);
    for (const [method, path] of [
      ['GET', '/v1/smart-home/subscriptions'],
      ['POST', '/v1/smart-home/subscriptions/intercom/open'],
      ['POST', '/v1/smart-home/subscriptions/barrier/disconnect'],
    ] as const) {
      const res = await fetch(`${api.url}${path}`, { method, headers: { 'x-api-key': key } });
      expect([res.status, ((await res.json()) as { error: { code: string } }).error.code]).toEqual([
        403,
        'forbidden',
      ]);
    }
    const bad = await fetch(`${api.url}/v1/smart-home/subscriptions`, {
      headers: { 'x-api-key': 'hk_nope_nope' },
    });
    expect(bad.status).toBe(401);
  });

  test('tenant A cannot see, open or read the commands of tenant B', async () => {
    const a = tenant();
    const b = tenant();
    const tokenA = await idp.issue(a);
    const tokenB = await idp.issue(b);
    await connect(a, tokenA);
    expect(
      (await call(api.url, 'GET', '/v1/smart-home/subscriptions', tokenB)).body.subscriptions,
    ).toEqual([]);
    const openB = await call(api.url, 'POST', '/v1/smart-home/subscriptions/intercom/open', tokenB);
    expect([openB.status, openB.body.error.code]).toEqual([409, 'not_connected']);
    const opened = await call(
      api.url,
      'POST',
      '/v1/smart-home/subscriptions/intercom/open',
      tokenA,
    );
    expect(opened.status).toBe(202);
    const readB = await call(
      api.url,
      'GET',
      `/v1/smart-home/commands/${opened.body.commandId}`,
      tokenB,
    );
    expect([readB.status, readB.body.error.code]).toEqual([404, 'command_not_found']);
  });
});

describe('open door / barrier', () => {
  test('opening without a subscription is refused with 409 and publishes nothing', async () => {
    const token = await idp.issue(tenant());
    const before = partner.received.length;
    const res = await call(api.url, 'POST', '/v1/smart-home/subscriptions/barrier/open', token);
    expect([res.status, res.body.error.code]).toEqual([409, 'not_connected']);
    expect(partner.received.length).toBe(before);
  });

  test('open answers 202 at once; the partner reply reaches the WebSocket as opened and is readable over REST', async () => {
    const t = tenant();
    const token = await idp.issue(t);
    await connect(t, token);
    const socket = await openSocket(api.url, token);
    try {
      const res = await call(api.url, 'POST', '/v1/smart-home/subscriptions/intercom/open', token);
      expect(res.status).toBe(202);
      expect(res.body.status).toBe('pending');
      const id = res.body.commandId as string;
      const event = await socket.next((e) => e.type === 'command.result' && e.commandId === id);
      expect(event).toMatchObject({ service: 'intercom', status: 'opened' });
      const read = await call(api.url, 'GET', `/v1/smart-home/commands/${id}`, token);
      expect(read.body).toMatchObject({ commandId: id, service: 'intercom', status: 'opened' });
      expect(await ctx.redis.pttl(`${ctx.keyPrefix}smart-home-cache:${id}`)).toBeGreaterThan(0);
    } finally {
      await socket.close();
    }
  });

  test('a partner that does not answer in time gives timeout, and its late reply is counted and changes nothing', async () => {
    const t = tenant();
    const token = await idp.issue(t);
    await connect(t, token, 'barrier');
    const socket = await openSocket(api.url, token);
    partner.behaviour.silent = true;
    try {
      const res = await call(api.url, 'POST', '/v1/smart-home/subscriptions/barrier/open', token);
      const id = res.body.commandId as string;
      await socket.next(
        (e) => e.type === 'command.result' && e.commandId === id && e.status === 'timeout',
        10_000,
        'timeout pushed',
      );
      const command = partner.received.find((r) => r.command.correlationId === id)?.command;
      expect(command).toBeDefined();
      const late = await repliesOf(bridge, 'late');
      await publishRaw(
        acme.name,
        JSON.stringify(buildReply(command as CommandMessage, 'success')),
        'device.open.result',
      );
      await waitFor(
        async () => (await repliesOf(bridge, 'late')) === late + 1,
        10_000,
        'late reply counted',
      );
      expect((await call(api.url, 'GET', `/v1/smart-home/commands/${id}`, token)).body.status).toBe(
        'timeout',
      );
    } finally {
      partner.behaviour.silent = false;
      await socket.close();
    }
  });

  test('a timeout is reported even when the api replica that accepted the command is gone', async () => {
    const t = tenant();
    const token = await idp.issue(t);
    await connect(t, token);
    const socket = await openSocket(api.url, token);
    const other = await startApi(ctx, vhost.url, idp);
    partner.behaviour.silent = true;
    try {
      const res = await call(
        other.url,
        'POST',
        '/v1/smart-home/subscriptions/intercom/open',
        token,
      );
      expect(res.status).toBe(202);
      await other.close();
      await socket.next(
        (e) =>
          e.type === 'command.result' &&
          e.commandId === res.body.commandId &&
          e.status === 'timeout',
        10_000,
        'timeout from the surviving replica',
      );
    } finally {
      partner.behaviour.silent = false;
      await socket.close();
    }
  });

  test("an open reply from another partner is refused, and the right partner's reply still settles it", async () => {
    const t = tenant();
    const token = await idp.issue(t);
    await connect(t, token);
    partner.behaviour.silent = true;
    try {
      const res = await call(api.url, 'POST', '/v1/smart-home/subscriptions/intercom/open', token);
      const id = res.body.commandId as string;
      const command = await waitFor(
        () => partner.received.find((r) => r.command.correlationId === id)?.command,
        10_000,
        'open received',
      );
      const mismatched = await repliesOf(bridge, 'mismatched_partner');
      await publishRaw(
        'intruder',
        JSON.stringify(buildReply(command, 'success')),
        'device.open.result',
      );
      await waitFor(
        async () => (await repliesOf(bridge, 'mismatched_partner')) === mismatched + 1,
        10_000,
        'mismatch counted',
      );
      expect((await call(api.url, 'GET', `/v1/smart-home/commands/${id}`, token)).body.status).toBe(
        'pending',
      );
      await publishRaw(
        acme.name,
        JSON.stringify(buildReply(command, 'failure', 'door jammed')),
        'device.open.result',
      );
      await waitFor(
        async () =>
          (await call(api.url, 'GET', `/v1/smart-home/commands/${id}`, token)).body.status ===
          'failed',
        10_000,
        'failed',
      );
      const read = (await call(api.url, 'GET', `/v1/smart-home/commands/${id}`, token)).body;
      expect(read).toMatchObject({ status: 'failed', failureCode: 'partner_refused' });
      expect(read.reason).toBeUndefined();
    } finally {
      partner.behaviour.silent = false;
    }
  });
});

describe('partner replies', () => {
  test('a duplicate reply changes nothing', async () => {
    const t = tenant();
    const token = await idp.issue(t);
    const { request } = await connect(t, token);
    const before = await ctx.db('smart_home_subscriptions').where({ tenant_id: t }).first();
    const command = partner.received.find((r) => r.command.correlationId === request.id)
      ?.command as CommandMessage;
    const duplicates = await repliesOf(bridge, 'duplicate');
    await publishRaw(acme.name, JSON.stringify(buildReply(command, 'failure', 'changed our mind')));
    await waitFor(
      async () => (await repliesOf(bridge, 'duplicate')) === duplicates + 1,
      10_000,
      'duplicate counted',
    );
    const after = await ctx.db('smart_home_subscriptions').where({ tenant_id: t }).first();
    expect(after).toEqual(before);
    expect(
      (await ctx.db('smart_home_requests').where({ request_uuid: request.id }).first()).state,
    ).toBe('complete');
  });

  test("a partner's free-text reason stays with operators: tenants get failureCode partner_refused on the socket and over REST", async () => {
    const hostile =
      '<script>alert(document.cookie)</script> relay db-7.internal.acme.local:5432 refused';
    const leaks = (text: string) => /<script|internal\.acme|db-7/.test(text);
    const t = tenant();
    const token = await idp.issue(t);
    await connect(t, token);
    const socket = await openSocket(api.url, token);
    partner.behaviour.silent = true;
    try {
      const open = await call(api.url, 'POST', '/v1/smart-home/subscriptions/intercom/open', token);
      const commandId = open.body.commandId as string;
      const command = await waitFor(
        () => partner.received.find((r) => r.command.correlationId === commandId)?.command,
        10_000,
        'open received',
      );
      await publishRaw(
        acme.name,
        JSON.stringify(buildReply(command, 'failure', hostile)),
        'device.open.result',
      );
      const result = await socket.next(
        (e) => e.type === 'command.result' && e.commandId === commandId,
        10_000,
        'open result',
      );
      expect(JSON.stringify(result)).not.toMatch(/<script|db-7/);
      expect(result).toMatchObject({ status: 'failed', failureCode: 'partner_refused' });
      const read = await call(api.url, 'GET', `/v1/smart-home/commands/${commandId}`, token);
      expect(read.body).toMatchObject({ status: 'failed', failureCode: 'partner_refused' });

      const off = await call(
        api.url,
        'POST',
        '/v1/smart-home/subscriptions/intercom/disconnect',
        token,
      );
      const requestId = off.body.request.id as string;
      const disconnect = await waitFor(
        () => partner.received.find((r) => r.command.correlationId === requestId)?.command,
        10_000,
        'disconnect received',
      );
      await publishRaw(
        acme.name,
        JSON.stringify(buildReply(disconnect, 'failure', hostile)),
        'subscription.disconnect.result',
      );
      const changed = await socket.next(
        (e) =>
          e.type === 'subscription.changed' &&
          (e.subscription as { lastRequest: { id: string; state: string } }).lastRequest.id ===
            requestId &&
          (e.subscription as { lastRequest: { state: string } }).lastRequest.state === 'failed',
        10_000,
        'disconnect failed',
      );
      expect(changed.subscription).toMatchObject({
        state: 'connected',
        lastRequest: { failureCode: 'partner_refused' },
      });
      const list = await call(api.url, 'GET', '/v1/smart-home/subscriptions', token);
      expect(list.body.subscriptions[0]).toMatchObject({
        lastRequest: { id: requestId, state: 'failed', failureCode: 'partner_refused' },
      });

      const tenantSaw = [...socket.events, read.body, list.body].map((x) => JSON.stringify(x));
      expect(tenantSaw.filter(leaks)).toEqual([]);
      // Operators keep the partner's words: in the request row, the command cache and the log.
      expect(
        (await ctx.db('smart_home_requests').where({ request_uuid: requestId }).first())
          .reply_reason,
      ).toBe(hostile);
      expect(await ctx.redis.hget(`${ctx.keyPrefix}smart-home-cache:${commandId}`, 'reason')).toBe(
        hostile,
      );
      expect(
        logLines.some((l) => l.includes(commandId) && l.includes('db-7.internal.acme.local')),
      ).toBe(true);
    } finally {
      partner.behaviour.silent = false;
      await socket.close();
    }
  });

  test('a reply for an unknown UUID is counted, acknowledged and changes nothing', async () => {
    const unknown = await repliesOf(bridge, 'unknown');
    const ghost = buildReply(
      {
        messageId: crypto.randomUUID(),
        correlationId: crypto.randomUUID(),
        type: 'subscription.connect',
        service: 'intercom',
        tenantRef: crypto.randomUUID(),
        createdAt: new Date().toISOString(),
        sentAt: new Date().toISOString(),
        attempt: 1,
        payload: { personalData: PERSONAL, biometricsConsent: false },
      },
      'success',
    );
    await publishRaw(acme.name, JSON.stringify(ghost));
    await publishRaw(
      acme.name,
      JSON.stringify({ ...ghost, type: 'device.open.result', messageId: crypto.randomUUID() }),
      'device.open.result',
    );
    await waitFor(
      async () => (await repliesOf(bridge, 'unknown')) === unknown + 2,
      10_000,
      'unknown replies counted',
    );
    await waitFor(
      async () => (await queueDepth(vhost.url, REPLIES_QUEUE)) === 0,
      5_000,
      'reply queue drained',
    );
  });

  test('a malformed message goes to the dead-letter queue with its reason and the next reply is still applied', async () => {
    const malformed = await repliesOf(bridge, 'malformed');
    await publishRaw(acme.name, '{"this": "is not a reply"');
    await publishRaw(acme.name, JSON.stringify({ messageId: 'nope', type: 'device.open.result' }));
    await waitFor(
      async () => (await repliesOf(bridge, 'malformed')) === malformed + 2,
      10_000,
      'malformed counted',
    );
    const dead = await getAll(DEAD_LETTER_QUEUE);
    expect(dead.map((m) => m.content)).toEqual(
      expect.arrayContaining(['{"this": "is not a reply"']),
    );
    expect(dead.every((m) => typeof m.reason === 'string' && m.reason.length > 0)).toBe(true);
    const t = tenant();
    await connect(t, await idp.issue(t));
  });

  test('a reply from another partner than the one asked is refused and changes nothing', async () => {
    const t = tenant();
    const token = await idp.issue(t);
    partner.behaviour.silent = true;
    try {
      const res = await call(
        api.url,
        'POST',
        '/v1/smart-home/subscriptions/barrier/connect',
        token,
        { personalData: PERSONAL },
      );
      const id = res.body.request.id as string;
      const command = await waitFor(
        () => partner.received.find((r) => r.command.correlationId === id)?.command,
        10_000,
        'command',
      );
      const mismatched = await repliesOf(bridge, 'mismatched_partner');
      await publishRaw('intruder', JSON.stringify(buildReply(command, 'success')));
      await waitFor(
        async () => (await repliesOf(bridge, 'mismatched_partner')) === mismatched + 1,
        10_000,
        'mismatch counted',
      );
      expect((await ctx.db('smart_home_requests').where({ request_uuid: id }).first()).state).toBe(
        'requested',
      );
    } finally {
      partner.behaviour.silent = false;
    }
  });
});

describe('hostile input', () => {
  test.each([
    [
      'personal data with 20,000 unknown keys',
      () => ({
        personalData: {
          ...PERSONAL,
          ...Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, 1])),
        },
      }),
    ],
    [
      'personal data fields of 50 KiB each',
      () => ({
        personalData: {
          fullName: 'n'.repeat(50_000),
          phone: '1'.repeat(50_000),
          email: `${'e'.repeat(50_000)}@x`,
          apartment: 'a'.repeat(50_000),
        },
      }),
    ],
    ['a body that is 256 KiB of array', () => Array.from({ length: 60_000 }, () => ({}))],
  ])(
    'a connect request with %s is answered 422 with at most 20 short issues and stores nothing',
    async (_name, body) => {
      const t = tenant();
      const res = await timedPost(
        `${api.url}/v1/smart-home/subscriptions/intercom/connect`,
        JSON.stringify(body()),
        { authorization: `Bearer ${await idp.issue(t)}` },
      );
      expect({ status: res.status, code: res.json?.error?.code }).toEqual({
        status: 422,
        code: 'invalid_body',
      });
      expect(res.bytes).toBeLessThan(MAX_ERROR_BYTES);
      expect(listedIssues(res)).toBeLessThanOrEqual(MAX_LISTED_ISSUES);
      expect(res.ms).toBeLessThan(2_000);
      expect(
        await ctx
          .db('smart_home_requests')
          .where({ tenant_id: t })
          .count<{ c: string }[]>('* as c'),
      ).toEqual([{ c: '0' }]);
    },
  );

  test('a connect request nested 100,000 deep is answered 400 body_too_deep', async () => {
    const res = await timedPost(
      `${api.url}/v1/smart-home/subscriptions/intercom/connect`,
      `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
      { authorization: `Bearer ${await idp.issue(tenant())}` },
    );
    expect({ status: res.status, code: res.json?.error?.code }).toEqual({
      status: 400,
      code: 'body_too_deep',
    });
    expect(res.bytes).toBeLessThan(MAX_ERROR_BYTES);
  });

  test('a reply quoting 15 KiB in a bad field, or of 1 MiB, is dead-lettered with a short reason, logged briefly, and replies keep flowing', async () => {
    const malformed = await repliesOf(bridge, 'malformed');
    const linesBefore = logLines.length;
    const quoting = JSON.stringify({
      messageId: crypto.randomUUID(),
      service: 's'.repeat(15_000),
      type: 't'.repeat(100),
      payload: { outcome: 'o'.repeat(100) },
    });
    await publishRaw(acme.name, quoting, 'x'.repeat(200));
    await publishRaw(acme.name, Buffer.alloc(1024 * 1024, 0x7b));
    await waitFor(
      async () => (await repliesOf(bridge, 'malformed')) === malformed + 2,
      10_000,
      'malformed counted',
    );
    const dead = (await getAll(DEAD_LETTER_QUEUE)).filter(
      (m) => m.content === quoting || m.content.length === 1024 * 1024,
    );
    expect(dead).toHaveLength(2);
    expect(
      dead.every(
        (m) => typeof m.reason === 'string' && m.reason.length > 0 && m.reason.length <= 500,
      ),
    ).toBe(true);
    expect(logLines.slice(linesBefore).every((l) => l.length < 4_096)).toBe(true);
    const t = tenant();
    await connect(t, await idp.issue(t));
  });
  test('a reply whose text holds NUL (PostgreSQL cannot store it) is dead-lettered as malformed with its reason, counted, and replies keep flowing', async () => {
    const malformed = await repliesOf(bridge, 'malformed');
    const reply = (type: string) =>
      JSON.stringify({
        messageId: crypto.randomUUID(),
        correlationId: crypto.randomUUID(),
        type,
        service: 'intercom',
        tenantRef: crypto.randomUUID(),
        createdAt: new Date().toISOString(),
        payload: { outcome: 'failure', reason: 'jammed\u0000door' },
      });
    const bodies = [reply('device.open.result'), reply('subscription.connect.result')];
    for (const b of bodies) await publishRaw(acme.name, b);
    await waitFor(
      async () => (await repliesOf(bridge, 'malformed')) === malformed + 2,
      10_000,
      'both counted as malformed',
    );
    const dead = (await getAll(DEAD_LETTER_QUEUE)).filter((m) => bodies.includes(m.content));
    expect(dead.map((m) => m.reason)).toEqual([
      expect.stringMatching(/NUL/),
      expect.stringMatching(/NUL/),
    ]);
    const t = tenant();
    await connect(t, await idp.issue(t));
  });
});

async function getAll(queue: string): Promise<{ content: string; reason: unknown }[]> {
  const conn = connectAmqp(vhost.url, ctx.logger, { name: 'test reader' });
  const out: { content: string; reason: unknown }[] = [];
  const ch = conn.createChannel({
    setup: async (c: ConfirmChannel) => {
      for (;;) {
        const m = await c.get(queue, { noAck: true });
        if (!m) break;
        out.push({ content: m.content.toString(), reason: m.properties.headers?.['x-hub-reason'] });
      }
    },
  });
  try {
    await ch.waitForConnect();
    return out;
  } finally {
    await ch.close();
    await conn.close();
  }
}
