// The tenant event contract: what each builder makes is an event of the union, field for field, and
// the `command.result` the command-result Lua script publishes on the real Redis is one too.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { REDIS_URL } from '../../test/support/context.js';
import { CommandCache } from '../domains/smart-home/command-cache.js';
import { commandResultEvent, type CommandRecord } from '../domains/smart-home/command-state.js';
import {
  buildCommandResult,
  buildOrderStatus,
  buildReady,
  buildSubscriptionChanged,
  tenantEvent,
  type SubscriptionView,
  type TenantEvent,
} from './tenant-events.js';

const at = new Date('2026-03-01T08:30:00.000Z');
const subscription: SubscriptionView = {
  service: 'intercom',
  state: 'failed',
  stateChangedAt: at.toISOString(),
  lastRequest: {
    id: randomUUID(),
    kind: 'connect',
    state: 'failed',
    attempts: 3,
    requestedAt: at.toISOString(),
    failureCode: 'partner_unavailable',
  },
};

/** Parses as the WebSocket does, and checks nothing of the event was left out or changed. */
function expectInUnion(event: TenantEvent): void {
  const parsed = tenantEvent.parse(JSON.parse(JSON.stringify(event)));
  expect(parsed).toEqual(event);
}

describe('each builder makes an event of the union', () => {
  test('ready', () => {
    expect(buildReady(at)).toEqual({ type: 'ready', at: at.toISOString() });
    expectInUnion(buildReady());
  });

  test('subscription.changed, with and without a last request', () => {
    const changed = buildSubscriptionChanged(subscription);
    expect(changed).toEqual({
      type: 'subscription.changed',
      at: subscription.stateChangedAt,
      subscription,
    });
    expectInUnion(changed);
    expectInUnion(
      buildSubscriptionChanged({ ...subscription, state: 'disconnected', lastRequest: null }),
    );
  });

  test('subscription.changed carries the view field by field, in its order', () => {
    const text = JSON.stringify(buildSubscriptionChanged(subscription));
    expect(text).toBe(
      JSON.stringify({
        type: 'subscription.changed',
        at: subscription.stateChangedAt,
        subscription,
      }),
    );
  });

  test('command.result, with a failure code only when given', () => {
    const opened = buildCommandResult({
      commandId: randomUUID(),
      service: 'barrier',
      status: 'opened',
      completedAt: at,
    });
    expect(opened).toEqual({
      type: 'command.result',
      at: at.toISOString(),
      commandId: opened.commandId,
      service: 'barrier',
      status: 'opened',
    });
    expectInUnion(opened);
    const failed = buildCommandResult({
      commandId: randomUUID(),
      service: 'intercom',
      status: 'failed',
      completedAt: at,
      failureCode: 'partner_refused',
    });
    expect(failed.failureCode).toBe('partner_refused');
    expectInUnion(failed);
    expectInUnion(
      buildCommandResult({
        commandId: randomUUID(),
        service: 'intercom',
        status: 'timeout',
        completedAt: at,
      }),
    );
  });

  test('order.status leaves out an empty reason and production status', () => {
    const e = {
      eventId: randomUUID(),
      orderId: randomUUID(),
      state: 'in_production' as const,
      version: 2,
      occurredAtMs: at.getTime(),
    };
    const bare = buildOrderStatus({ ...e, reason: '', productionStatus: '' });
    expect(bare).toEqual({
      type: 'order.status',
      at: at.toISOString(),
      eventId: e.eventId,
      orderId: e.orderId,
      state: 'in_production',
      version: 2,
    });
    expectInUnion(bare);
    const full = buildOrderStatus({
      ...e,
      state: 'failed',
      reason: 'robot jammed',
      productionStatus: 'cooking',
    });
    expect(full).toMatchObject({ reason: 'robot jammed', productionStatus: 'cooking' });
    expectInUnion(full);
    expect(() => buildOrderStatus({ ...e, occurredAtMs: 2 ** 60 })).toThrow(RangeError);
  });
});

describe('the union refuses what the WebSocket does not send', () => {
  test('an unknown type, a missing field, a value outside its enum', () => {
    expect(tenantEvent.safeParse({ type: 'notice', at: at.toISOString() }).success).toBe(false);
    expect(
      tenantEvent.safeParse({
        type: 'command.result',
        at: at.toISOString(),
        commandId: randomUUID(),
        service: 'intercom',
      }).success,
    ).toBe(false);
    expect(
      tenantEvent.safeParse({
        ...buildCommandResult({
          commandId: randomUUID(),
          service: 'intercom',
          status: 'opened',
          completedAt: at,
        }),
        status: 'pending',
      }).success,
    ).toBe(false);
    expect(tenantEvent.safeParse({ type: 'ready' }).success).toBe(false);
  });
});

describe('the command-result Lua script on the real Redis', () => {
  const prefix = `test:tenant-events:${randomUUID()}:`;
  let redis: Redis;
  let subscriber: Redis;

  beforeAll(() => {
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    subscriber = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    for (const r of [subscriber, redis]) {
      const ended = new Promise((resolve) => r.once('end', resolve));
      await r.quit();
      await ended;
    }
  });

  test('publishes a command.result of the union, once per outcome', async () => {
    const cache = new CommandCache(redis, prefix, 60_000);
    const tenantId = `tenant-${randomUUID()}`;
    const received: string[] = [];
    subscriber.on('message', (_channel: string, message: string) => received.push(message));
    await subscriber.subscribe(`${prefix}tenant-events:${tenantId}`);

    const createdAt = new Date();
    const ended = (status: CommandRecord['status'], commandId = randomUUID()): CommandRecord => ({
      commandId,
      tenantId,
      service: 'intercom',
      partner: 'acme',
      status,
      reason: status === 'failed' ? 'door jammed' : undefined,
      createdAt,
      deadline: new Date(createdAt.getTime() + 10_000),
      completedAt: new Date(createdAt.getTime() + 1_234),
    });
    const commands = [ended('opened'), ended('failed'), ended('timeout')];
    for (const c of commands) expect(await cache.publishResult(c)).toBe(true);
    // The same outcome again publishes nothing.
    expect(await cache.publishResult(commands[0] as CommandRecord)).toBe(false);

    const deadline = Date.now() + 5_000;
    while (received.length < commands.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(received).toHaveLength(commands.length);
    received.forEach((message, i) => {
      const parsed = tenantEvent.parse(JSON.parse(message));
      expect(parsed).toEqual(commandResultEvent(commands[i] as CommandRecord));
      expect(parsed.type).toBe('command.result');
    });
    // The partner's words stay in the cache, never in the event.
    expect(received.join('')).not.toContain('door jammed');
    expect(await redis.hget(cache.key(commands[1]?.commandId ?? ''), 'reason')).toBe('door jammed');
  });
});
