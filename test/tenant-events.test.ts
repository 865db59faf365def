// Tenant event routing on the real Redis: a replica that subscribes the moment its connection is
// created (an api process taking sockets as it starts) still receives every event published after.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import type { Redis } from 'ioredis';
import { createRedis } from '../services/core/redis.js';
import {
  anyTenantEvent,
  TenantEventPublisher,
  TenantEventSubscriber,
  type AnyTenantEvent,
} from '../services/core/tenant-events.js';
import { createTestContext, REDIS_URL, waitFor, type TestContext } from './support/context.js';

let ctx: TestContext;
const opened: Redis[] = [];

beforeAll(async () => {
  ctx = await createTestContext('tevents');
});
afterAll(async () => {
  for (const r of opened) r.disconnect();
  await ctx?.close();
});

test('subscribing on a connection that is still connecting loses no subscription', async () => {
  const publisher = new TenantEventPublisher(ctx.redis, ctx.keyPrefix);
  // Each round subscribes during the new connection's handshake, as a replica taking sockets while it starts.
  for (let round = 0; round < 20; round++) {
    const connection = createRedis(
      { REDIS_URL, REDIS_KEY_PREFIX: ctx.keyPrefix },
      { subscriber: true },
    );
    // TCP is up, the client's handshake (CLIENT SETINFO, the ready check's INFO) still in flight.
    const errors: Error[] = [];
    connection.on('error', (e: Error) => errors.push(e));
    await new Promise((resolve) => connection.once('connect', resolve));
    opened.push(connection);
    const received: AnyTenantEvent[] = [];
    const subscriber = new TenantEventSubscriber(
      connection,
      ctx.keyPrefix,
      ctx.logger,
      anyTenantEvent,
      (_tenant, event) => received.push(event),
    );
    const tenant = `tenant-${round}`;
    await subscriber.add(tenant);
    expect(
      await publisher.publish(tenant, { type: 'probe', at: new Date().toISOString(), round }),
    ).toBe(1);
    await waitFor(() => received.length === 1, 5_000, `round ${round}'s event`);
    // Not torn down and rebuilt on the way: the handshake finished before the SUBSCRIBE went out.
    expect(errors.map((e) => e.message)).toEqual([]);
    connection.disconnect();
  }
});
