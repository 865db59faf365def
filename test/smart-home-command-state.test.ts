// Open commands outlive their cache: with the Redis that holds smart-home-cache killed (and restarted
// empty) while commands are pending, a tenant still reads each command's state (never a 500 or a
// 404), a partner's reply after the loss still completes its command, a command nobody answers
// still ends `timeout`, and the tenant's socket still gets every `command.result`.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Redis } from 'ioredis';
import type { PartnerSimulator } from '../services/simulators/smart-home/partner.js';
import { waitFor } from './support/context.js';
import { startOwnRedis, type OwnServer } from './support/own-servers.js';
import {
  call,
  connectedTenant,
  openCommand,
  openSocket,
  replyAsPartner,
  startStack,
  type Stack,
  type TenantSocket,
} from './support/smart-home.js';

/** Long enough for a Redis restart between an open and its reply on a loaded machine. */
const TTL_MS = 12_000;

let redis: OwnServer;
let redisUp = false;
let stack: Stack;
let partner: PartnerSimulator;

async function stopRedis(): Promise<void> {
  redisUp = false;
  await redis.stop();
}

/** Starts an empty Redis on the same port (a Redis that lost its data), unless it runs. */
async function startRedis(): Promise<void> {
  if (redisUp) return;
  await redis.start();
  redisUp = true;
}

beforeAll(async () => {
  redis = await startOwnRedis();
  redisUp = true;
  // The api and the bridge both use this Redis: the command cache and the tenant's event channel.
  stack = await startStack('cmdstate', {
    env: { REDIS_URL: redis.url, SMART_HOME_COMMAND_TTL_MS: String(TTL_MS) },
    partner: { delayMs: 10 },
  });
  partner = stack.partner as PartnerSimulator;
});
afterAll(async () => {
  await stack?.close();
  await redis?.stop();
});

/** Every answer to a command read, to prove none was a 500 or a 404. */
const reads: number[] = [];

async function statusOf(token: string, commandId: string): Promise<string> {
  const res = await call(stack.api.url, 'GET', `/v1/smart-home/commands/${commandId}`, token);
  reads.push(res.status);
  expect([res.status, res.body.error?.code]).toEqual([200, undefined]);
  return res.body.status as string;
}

/** Waits until the api's subscriber is back on the tenant's channel of the restarted Redis. */
async function resubscribed(tenant: string): Promise<void> {
  const probe = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  try {
    const channel = `${stack.ctx.keyPrefix}tenant-events:${tenant}`;
    await waitFor(
      async () => {
        const [, n] = (await probe.pubsub('NUMSUB', channel)) as [string, number];
        return Number(n) > 0;
      },
      20_000,
      'the api subscribed again',
    );
  } finally {
    probe.disconnect();
  }
}

const resultOf = (socket: TenantSocket, id: string, status: string, what: string) =>
  socket.next(
    (e) => e.type === 'command.result' && e.commandId === id && e.status === status,
    30_000,
    what,
  );

describe('open commands when Redis loses them', () => {
  test('Redis killed and restarted empty with commands pending: the commands read as pending, not 404, and one never answered ends timeout, on REST and the socket', async () => {
    const { tenant, token } = await connectedTenant(stack);
    const socket = await openSocket(stack.api.url, token);
    partner.behaviour.silent = true;
    try {
      const first = await openCommand(stack, token);
      const second = await openCommand(stack, token);
      await stopRedis();
      await startRedis();
      expect([await statusOf(token, first.id), await statusOf(token, second.id)]).toEqual([
        'pending',
        'pending',
      ]);
      await resubscribed(tenant);
      await resultOf(socket, second.id, 'timeout', 'the timeout pushed');
      expect([await statusOf(token, first.id), await statusOf(token, second.id)]).toEqual([
        'timeout',
        'timeout',
      ]);
    } finally {
      partner.behaviour.silent = false;
      await startRedis();
      await socket.close();
    }
  }, 90_000);

  test('a partner reply after Redis lost its data completes the command, on REST and the socket', async () => {
    const { tenant, token } = await connectedTenant(stack);
    const socket = await openSocket(stack.api.url, token);
    partner.behaviour.silent = true;
    try {
      const answered = await openCommand(stack, token);
      await stopRedis();
      await startRedis();
      await resubscribed(tenant);
      await replyAsPartner(stack, answered.command, 'success');
      await resultOf(socket, answered.id, 'opened', 'the reply pushed');
      expect(await statusOf(token, answered.id)).toBe('opened');
    } finally {
      partner.behaviour.silent = false;
      await startRedis();
      await socket.close();
    }
  }, 90_000);

  test('with Redis down, a reply still completes its command and an unanswered one still times out, both readable; the socket gets both results once Redis is back', async () => {
    const { tenant, token } = await connectedTenant(stack);
    const socket = await openSocket(stack.api.url, token);
    partner.behaviour.silent = true;
    try {
      const answered = await openCommand(stack, token);
      const unanswered = await openCommand(stack, token);
      await stopRedis();
      await replyAsPartner(stack, answered.command, 'failure');
      await waitFor(
        async () => (await statusOf(token, answered.id)) === 'failed',
        20_000,
        'failed while Redis is down',
      );
      await waitFor(
        async () => (await statusOf(token, unanswered.id)) === 'timeout',
        TTL_MS + 20_000,
        'timed out while Redis is down',
      );

      await startRedis();
      await resubscribed(tenant);
      expect(
        await resultOf(socket, answered.id, 'failed', 'the reply pushed once Redis is back'),
      ).toMatchObject({ failureCode: 'partner_refused' });
      await resultOf(socket, unanswered.id, 'timeout', 'the timeout pushed once Redis is back');
    } finally {
      partner.behaviour.silent = false;
      await startRedis();
      await socket.close();
    }
  }, 90_000);

  test('no command read answered a 500 or a 404', () => {
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.filter((s) => s !== 200)).toEqual([]);
  });
});
