// Acknowledgements across a lost channel, on a RabbitMQ node and a Redis of this file's own: messages
// are held in flight by pausing Redis while the broker drops the channel. The api process survives
// acks and nacks that find their channel gone, and the bridge never acknowledges an old reply on
// the new channel; the broker redelivers what was in flight and each message takes effect once.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import amqplib from 'amqplib';
import { Redis } from 'ioredis';
import { freePort } from '../services/core/net.js';
import {
  encodeStatus,
  STATUS_EXCHANGE,
  STATUS_QUEUE,
  STATUS_ROUTING_KEY,
} from '../services/domains/kitchen/status-events.js';
import { CommandCache } from '../services/domains/smart-home/command-cache.js';
import { CommandStore } from '../services/domains/smart-home/command-store.js';
import { buildCommand, buildReply } from '../services/contracts/smart-home-messages.js';
import { REPLIES_EXCHANGE, REPLIES_QUEUE } from '../services/contracts/smart-home-topology.js';
import { createTestContext, DATABASE_URL, waitFor, type TestContext } from './support/context.js';
import { track } from './support/leaks.js';
import { startServiceProcess, type ServiceProcess, expectCleanExit } from './support/process.js';
import { startRabbitNode, type RabbitNode } from './support/rabbitmq-node.js';
import { addPartner, smartHomeEnv, startBridge, startTenantIdp } from './support/smart-home.js';
import type { TenantIdp } from '../services/simulators/tenant-idp/server.js';

/** A redis-server of this file's own: paused (SIGSTOP) it holds every command sent to it. */
interface OwnRedis {
  url: string;
  pause(): void;
  resume(): void;
  kill(): Promise<void>;
  /** Starts it again on the same port (after kill). */
  start(): Promise<void>;
}

async function startOwnRedis(): Promise<OwnRedis> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let exited = Promise.resolve();
  const untrack = track('own redis-server');
  const own: OwnRedis = {
    url,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    async kill() {
      child?.kill('SIGCONT');
      child?.kill('SIGKILL');
      await exited;
      child = undefined;
    },
    async start() {
      const c = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        { stdio: 'ignore' },
      );
      child = c;
      exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      const probe = new Redis(url, {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      probe.on('error', () => undefined);
      await waitFor(
        async () =>
          (await probe.connect().then(
            () => probe.ping(),
            () => undefined,
          )) === 'PONG',
        10_000,
        'own redis-server up',
      );
      probe.disconnect();
    },
  };
  await own.start();
  const kill = own.kill.bind(own);
  own.kill = async () => {
    await kill();
    untrack();
  };
  return own;
}

let node: RabbitNode;
let redis: OwnRedis;
let ctx: TestContext;
let idp: TenantIdp;

beforeAll(async () => {
  node = await startRabbitNode();
  redis = await startOwnRedis();
  ctx = await createTestContext('acksreconnect');
  idp = await startTenantIdp();
}, 90_000);
afterAll(async () => {
  await idp?.close();
  await ctx?.close();
  await redis?.kill();
  await node?.stop();
}, 60_000);

/** Ready and unacknowledged messages of a queue on the node. */
async function depth(queue: string): Promise<{ ready: number; unacked: number }> {
  const rows = JSON.parse(
    await node.rabbitmqctl(
      'list_queues',
      '-q',
      '--formatter',
      'json',
      'name',
      'messages_ready',
      'messages_unacknowledged',
    ),
  ) as { name: string; messages_ready: number; messages_unacknowledged: number }[];
  const row = rows.find((r) => r.name === queue);
  return { ready: row?.messages_ready ?? -1, unacked: row?.messages_unacknowledged ?? -1 };
}

async function consumed(queue: string): Promise<boolean> {
  return (await node.rabbitmqctl('list_consumers', '-q', 'queue_name'))
    .split('\n')
    .some((l) => l.trim() === queue);
}

const UNKNOWN_TAG = /precondition_failed: unknown delivery tag/gi;

describe('the api process and its order status consumer', () => {
  let api: ServiceProcess;
  let sub: Redis;
  const delivered: string[] = [];

  beforeAll(async () => {
    api = startServiceProcess('services/api/main.ts', {
      ...smartHomeEnv(ctx, node.amqpUrl, idp, { REDIS_URL: redis.url }),
      DATABASE_URL,
      DATABASE_SCHEMA: ctx.schema,
      PORT: '0',
      LOG_LEVEL: 'info',
      KITCHEN_API: 'true',
      KITCHEN_WAREHOUSE_WEBHOOK_SECRETS: `whsec_${Buffer.alloc(24, 7).toString('base64')}`,
    });
    await waitFor(() => consumed(STATUS_QUEUE), 30_000, 'the api to consume order status events');
    sub = new Redis(redis.url);
    sub.on('error', () => undefined);
    await sub.psubscribe(`${ctx.keyPrefix}*`);
    sub.on('pmessage', (_p, _c, message: string) =>
      delivered.push(String((JSON.parse(message) as { eventId?: unknown }).eventId)),
    );
  }, 60_000);
  afterAll(async () => {
    sub?.disconnect();
    api?.child.kill('SIGTERM');
    if (api) await expectCleanExit(api);
  });

  /** Publishes `n` events (version 1 of `n` orders); returns their order ids. */
  async function publishEvents(n: number): Promise<{ eventId: string; orderId: string }[]> {
    const events = Array.from({ length: n }, () => ({
      eventId: randomUUID(),
      orderId: randomUUID(),
    }));
    const conn = await amqplib.connect(node.amqpUrl);
    try {
      const ch = await conn.createConfirmChannel();
      for (const e of events) {
        ch.publish(
          STATUS_EXCHANGE,
          STATUS_ROUTING_KEY,
          encodeStatus({
            ...e,
            tenantId: 'tenant-acks',
            state: 'paid',
            reason: '',
            occurredAtMs: Date.now(),
            version: 1,
            productionStatus: '',
          }),
          { persistent: true },
        );
      }
      await ch.waitForConfirms();
    } finally {
      await conn.close();
    }
    return events;
  }

  /** Closes the api's connection from the broker's side; its channel goes with it. */
  async function dropApiConnection(): Promise<void> {
    await node.rabbitmqctl('close_all_connections', 'closed by the test');
    await waitFor(() => consumed(STATUS_QUEUE), 20_000, 'the api to consume again');
  }

  test('acks due after the channel closed are skipped, the api lives on, and the redelivered events reach the tenant once', async () => {
    redis.pause();
    let ids: string[] = [];
    try {
      ids = (await publishEvents(5)).map((e) => e.eventId);
      await waitFor(
        async () => (await depth(STATUS_QUEUE)).unacked === 5,
        10_000,
        'five events in flight',
      );
      await dropApiConnection();
      await waitFor(
        async () => (await depth(STATUS_QUEUE)).unacked === 5,
        10_000,
        'the five redelivered on the new channel',
      );
    } finally {
      redis.resume();
    }
    await waitFor(
      async () =>
        JSON.stringify(await depth(STATUS_QUEUE)) === JSON.stringify({ ready: 0, unacked: 0 }),
      15_000,
      'the queue drained',
    );
    await waitFor(() => ids.every((id) => delivered.includes(id)), 10_000, 'every event delivered');
    expect(ids.map((id) => delivered.filter((d) => d === id).length)).toEqual([1, 1, 1, 1, 1]);
    expect(api.child.exitCode).toBeNull();
    expect(node.logs()).not.toMatch(UNKNOWN_TAG);
  }, 60_000);

  test('nacks due after the channel closed (Redis down) are skipped, the api lives on, and the events are delivered once Redis is back', async () => {
    await redis.kill();
    let orders: string[] = [];
    try {
      orders = (await publishEvents(5)).map((e) => e.orderId);
      // Each failed delivery is handed back a second later: once the events are in flight and a
      // second and a half has passed, some are always waiting for that nack.
      await waitFor(
        async () => (await depth(STATUS_QUEUE)).unacked > 0,
        10_000,
        'events in flight',
      );
      await new Promise((r) => setTimeout(r, 1_500));
      await dropApiConnection();
    } finally {
      await redis.start();
    }
    // The delivery script records each order's delivered version (the restarted Redis started empty).
    const check = new Redis(redis.url);
    try {
      await waitFor(
        async () =>
          (
            await Promise.all(
              orders.map((o) => check.get(`${ctx.keyPrefix}kitchen-status-version:${o}`)),
            )
          ).every((v) => v === '1'),
        30_000,
        'every event delivered',
      );
    } finally {
      check.disconnect();
    }
    await waitFor(
      async () =>
        JSON.stringify(await depth(STATUS_QUEUE)) === JSON.stringify({ ready: 0, unacked: 0 }),
      15_000,
      'the queue drained',
    );
    expect(api.child.exitCode).toBeNull();
    expect(api.output()).not.toMatch(/IllegalOperationError|uncaught|unhandled/i);
  }, 60_000);
});

describe('the bridge consuming partner replies', () => {
  test('replies in flight across a broker restart are acknowledged only on their own channel: no 406, each command settled once, the queue drained', async () => {
    const own = new Redis(redis.url);
    const partner = await addPartner(ctx, 'acks-partner');
    const bridge = await startBridge(ctx, node.amqpUrl, idp, ctx.logger, {}, own);
    try {
      await waitFor(() => consumed(REPLIES_QUEUE), 20_000, 'the bridge to consume replies');
      // Open commands as the api records them: the row in PostgreSQL, the pending entry in Redis.
      const store = new CommandStore(ctx.db);
      const cache = new CommandCache(own, ctx.keyPrefix, 300_000);
      const ids = Array.from({ length: 10 }, () => randomUUID());
      for (const commandId of ids) {
        const target = {
          commandId,
          tenantId: 'tenant-acks',
          service: 'intercom' as const,
          partner: partner.name,
        };
        await store.create({ ...target, ttlMs: 120_000 });
        await cache.create(target, 120_000);
      }
      const logBefore = node.logs().length;
      const conn = await amqplib.connect(node.amqpUrl);
      redis.pause();
      try {
        const pub = await conn.createConfirmChannel();
        for (const correlationId of ids) {
          const command = buildCommand({
            type: 'device.open',
            correlationId,
            service: 'intercom',
            tenantRef: randomUUID(),
            createdAt: new Date(),
            attempt: 1,
            payload: { expiresAt: new Date(Date.now() + 60_000).toISOString() },
          });
          const reply = buildReply(command, 'success');
          pub.publish(REPLIES_EXCHANGE, partner.name, Buffer.from(JSON.stringify(reply)), {
            persistent: true,
            contentType: 'application/json',
            messageId: reply.messageId,
            correlationId,
            type: reply.type,
          });
        }
        await pub.waitForConfirms();
        await conn.close();
        await waitFor(
          async () => (await depth(REPLIES_QUEUE)).unacked === 10,
          10_000,
          'ten replies in flight',
        );
        await node.rabbitmqctl('stop_app');
        await node.rabbitmqctl('start_app');
        // The outcomes were committed in PostgreSQL before the pushes that Redis holds up, so the
        // copies redelivered on the new channel settle at once, while the first deliveries still wait.
        await waitFor(
          async () =>
            JSON.stringify(await depth(REPLIES_QUEUE)) === JSON.stringify({ ready: 0, unacked: 0 }),
          30_000,
          'the redelivered replies settled on the new channel',
        );
      } finally {
        redis.resume();
      }
      // The first deliveries finish now and must not be acknowledged on the new channel.
      await new Promise((r) => setTimeout(r, 2_000));
      expect(await depth(REPLIES_QUEUE)).toEqual({ ready: 0, unacked: 0 });
      const statuses = await Promise.all(
        ids.map(async (id) => (await store.get(id, 'tenant-acks'))?.status),
      );
      expect(statuses).toEqual(ids.map(() => 'opened'));
      expect(node.logs().slice(logBefore).match(UNKNOWN_TAG) ?? []).toEqual([]);
    } finally {
      await bridge.close();
      own.disconnect();
    }
  }, 120_000);
});
