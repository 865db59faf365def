// The smart-home routes when what they depend on is down: an api whose Redis (smart-home-cache) has
// stopped still reads commands from PostgreSQL; an open it cannot send, and a read neither store
// can answer, get 503 with a stable code and Retry-After, never a 500, and nothing stays pending.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createDb } from '../services/core/db.js';
import { freePort } from '../services/core/net.js';
import { waitFor } from './support/context.js';
import { startOwnRedis } from './support/own-servers.js';
import {
  call,
  PERSONAL,
  startApi,
  startStack,
  type ApiInstance,
  type Stack,
} from './support/smart-home.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack('shout', { partner: { delayMs: 10 } });
});
afterAll(async () => {
  await stack?.close();
});

async function connectedTenant(): Promise<string> {
  const t = `tenant-${Math.random().toString(36).slice(2, 10)}`;
  const token = await stack.idp.issue(t);
  const res = await call(
    stack.api.url,
    'POST',
    '/v1/smart-home/subscriptions/intercom/connect',
    token,
    { personalData: PERSONAL, biometricsConsent: true },
  );
  expect(res.status).toBe(202);
  await waitFor(
    async () =>
      (await call(stack.api.url, 'GET', '/v1/smart-home/subscriptions', token)).body
        .subscriptions[0]?.state === 'connected',
    10_000,
    'connected',
  );
  return token;
}

/** Status, error code and Retry-After of a call. */
async function answer(api: ApiInstance, method: string, path: string, token: string) {
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}` },
  });
  const body = (await res.json()) as { error?: { code?: string } };
  return { status: res.status, code: body.error?.code, retryAfter: res.headers.get('retry-after') };
}

describe('smart-home routes with a dependency down', () => {
  test("with the api's Redis stopped, open answers 503 command_not_sent with Retry-After, and a command read answers from PostgreSQL, not 500", async () => {
    const token = await connectedTenant();
    const redis = await startOwnRedis();
    let api: ApiInstance | undefined;
    try {
      api = await startApi(stack.ctx, stack.vhost.url, stack.idp, stack.ctx.logger, {
        REDIS_URL: redis.url,
      });
      const before = await call(
        api.url,
        'POST',
        '/v1/smart-home/subscriptions/intercom/open',
        token,
      );
      expect(before.status).toBe(202);
      const path = `/v1/smart-home/commands/${before.body.commandId as string}`;
      await waitFor(
        async () => (await call(api!.url, 'GET', path, token)).body.status === 'opened',
        10_000,
        'opened',
      );
      await redis.stop();
      const open = await answer(api, 'POST', '/v1/smart-home/subscriptions/intercom/open', token);
      const read = await call(api.url, 'GET', path, token);
      // The documented open refusal keeps its code; the command's record is in PostgreSQL.
      expect({ open, read: [read.status, read.body.status] }).toEqual({
        open: {
          status: 503,
          code: 'command_not_sent',
          retryAfter: expect.stringMatching(/^[1-9]\d*$/),
        },
        read: [200, 'opened'],
      });
    } finally {
      await api?.close();
      await redis.stop();
    }
  });

  test("with neither the api's Redis nor its PostgreSQL reachable, reading a command answers 503 commands_unavailable with Retry-After, not 500", async () => {
    const token = await connectedTenant();
    const opened = await call(
      stack.api.url,
      'POST',
      '/v1/smart-home/subscriptions/intercom/open',
      token,
    );
    expect(opened.status).toBe(202);
    const redis = await startOwnRedis();
    // A pool whose server is gone: connections to a port nobody listens on are refused.
    const db = createDb({
      DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/test`,
      DATABASE_SCHEMA: stack.ctx.schema,
      DATABASE_POOL_MAX: 2,
    });
    let api: ApiInstance | undefined;
    try {
      api = await startApi(
        stack.ctx,
        stack.vhost.url,
        stack.idp,
        stack.ctx.logger,
        { REDIS_URL: redis.url },
        { db },
      );
      await redis.stop();
      const read = await answer(
        api,
        'GET',
        `/v1/smart-home/commands/${opened.body.commandId as string}`,
        token,
      );
      expect(read).toEqual({
        status: 503,
        code: 'commands_unavailable',
        retryAfter: expect.stringMatching(/^[1-9]\d*$/),
      });
    } finally {
      await api?.close();
      await redis.stop();
      await db.destroy();
    }
  });

  test('with RabbitMQ unreachable from the api, open answers 503 command_not_sent with Retry-After and forgets the command', async () => {
    const token = await connectedTenant();
    const closed = `amqp://guest:guest@127.0.0.1:${await freePort()}/`;
    const api = await startApi(stack.ctx, closed, stack.idp, stack.ctx.logger);
    try {
      const keysBefore = await stack.ctx.redis.keys(`${stack.ctx.keyPrefix}smart-home-cache:*`);
      const rowsBefore = await stack.ctx.db('smart_home_commands').pluck('command_id');
      const open = await answer(api, 'POST', '/v1/smart-home/subscriptions/intercom/open', token);
      expect(open).toEqual({
        status: 503,
        code: 'command_not_sent',
        retryAfter: expect.stringMatching(/^[1-9]\d*$/),
      });
      expect(await stack.ctx.redis.keys(`${stack.ctx.keyPrefix}smart-home-cache:*`)).toEqual(
        keysBefore,
      );
      expect(await stack.ctx.db('smart_home_commands').pluck('command_id')).toEqual(rowsBefore);
    } finally {
      await api.close();
    }
  });
});
