// Dead letters through the `hub` CLI as an SRE uses it, on a real RabbitMQ vhost and PostgreSQL
// schema: the keeper moves dead-lettered messages into the dead_letters table without losing one
// (of one over the size limit only its beginning), and `hub dead-letters` lists, shows, replays
// (once, to where they were first published) and purges them.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { runHubCli } from './support/tools.js';
import amqplib, { type ChannelModel, type Channel } from 'amqplib';
import { connectAmqp, type AmqpConnectionManager } from '../services/core/amqp.js';
import { loadConfig } from '../services/core/config.js';
import { DeadLetterKeeper } from '../services/core/dead-letters/keeper.js';
import { encryptionKeysEnv, FieldCipher } from '../services/core/field-cipher.js';
import { DEV_DATA_KEYS_FILE } from '../services/core/local-servers.js';
import {
  assertStatusTopology,
  DEAD_EXCHANGE,
  DEAD_QUEUE,
  STATUS_EXCHANGE,
  STATUS_QUEUE,
  STATUS_ROUTING_KEY,
} from '../services/domains/kitchen/status-events.js';
import {
  assertBaseTopology,
  assertRepliesTopology,
  assertPartnerTopology,
  COMMANDS_EXCHANGE,
  DEAD_LETTER_EXCHANGE,
  DEAD_LETTER_QUEUE,
  REPLIES_EXCHANGE,
  REPLIES_QUEUE,
} from '../services/contracts/smart-home-topology.js';
import { createVhost, type TestVhost } from './support/amqp.js';
import { count } from './support/allio.js';
import { createTestContext, DATABASE_URL, waitFor, type TestContext } from './support/context.js';

/** Each CLI run starts node and compiles the sources (2-5 s on a loaded machine); a test runs several. */
const CLI_TEST_MS = 180_000;
const KEYS = `k1:${randomBytes(32).toString('base64')}`;
/** The keeper's DEAD_LETTER_MAX_BODY_BYTES (its default). */
const MAX_BODY = 256 * 1024;
let ctx: TestContext;
let vhost: TestVhost;
let amqp: AmqpConnectionManager;
let keeper: DeadLetterKeeper;
let conn: ChannelModel;
let ch: Channel;

beforeAll(async () => {
  ctx = await createTestContext('dlq');
  vhost = await createVhost('dlq');
  amqp = connectAmqp(vhost.url, ctx.logger, { name: 'dead-letter test' });
  keeper = new DeadLetterKeeper({
    amqp,
    db: ctx.db,
    logger: ctx.logger,
    metrics: ctx.metrics,
    owner: 'test',
    pollMaxMs: 200,
    maxBodyBytes: MAX_BODY,
    cipher: new FieldCipher(
      loadConfig(encryptionKeysEnv, { DATA_ENCRYPTION_KEYS: KEYS }).DATA_ENCRYPTION_KEYS,
    ),
    queues: [
      { queue: DEAD_LETTER_QUEUE, setup: assertBaseTopology },
      { queue: DEAD_QUEUE, setup: assertStatusTopology },
    ],
  });
  await keeper.start();
  conn = await amqplib.connect(vhost.url);
  ch = await conn.createChannel();
  await assertRepliesTopology(ch);
  await assertStatusTopology(ch);
  await assertPartnerTopology(ch, { name: 'acme', commandQueue: 'smart-home.acme.commands' });
});
afterAll(async () => {
  await keeper?.stop();
  await conn?.close();
  await amqp?.close();
  await vhost?.close();
  await ctx?.close();
});

const hub = (args: string[], env: Record<string, string> = {}) =>
  runHubCli(DATABASE_URL, ctx.schema, args, env);

const lines = (s: string) =>
  s
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
const idOf = async (where: Record<string, unknown>) =>
  String((await ctx.db('dead_letters').where(where).first<{ id: string }>()).id);
const depth = async (queue: string) => (await ch.checkQueue(queue)).messageCount;

/** Everything in `queue` now, taken off it. */
async function drain(queue: string) {
  const out: amqplib.GetMessage[] = [];
  for (let m = await ch.get(queue, { noAck: true }); m; m = await ch.get(queue, { noAck: true })) {
    out.push(m);
  }
  return out;
}

const reply = JSON.stringify({
  type: 'device.open.result',
  note: 'a reply the bridge could not apply',
});
const statusBytes = Buffer.from([0x0a, 0x03, 0xff, 0x00, 0x01]);

describe('hub dead-letters', () => {
  test(
    'dead letters of both queues are moved into PostgreSQL, each once, with origin and reason',
    async () => {
      // The broker dead-letters a reply rejected without requeue: x-death names queue, exchange, key.
      ch.publish(REPLIES_EXCHANGE, 'acme', Buffer.from(reply), {
        messageId: 'm-reply',
        contentType: 'application/json',
        persistent: true,
      });
      const m = await waitFor(
        async () => (await ch.get(REPLIES_QUEUE)) || null,
        10_000,
        'the reply queued',
      );
      ch.nack(m, false, false);
      // The hub's status consumer moves a malformed event itself, with its reason.
      const hubHeaders = {
        'x-hub-reason': 'not an OrderStatusChanged message: index out of range',
        'x-hub-source-queue': STATUS_QUEUE,
        'x-hub-source-exchange': STATUS_EXCHANGE,
      };
      ch.publish(DEAD_EXCHANGE, STATUS_ROUTING_KEY, statusBytes, {
        messageId: 'm-status',
        headers: hubHeaders,
        persistent: true,
      });
      // The same dead letter delivered again (its ack was lost): stored once.
      ch.publish(DEAD_EXCHANGE, STATUS_ROUTING_KEY, statusBytes, {
        messageId: 'm-status',
        headers: { ...hubHeaders, 'x-delivery-count': 1 },
        persistent: true,
      });
      // An open command nobody took before its TTL: expired by the broker.
      ch.publish(COMMANDS_EXCHANGE, 'acme', Buffer.from('{"type":"device.open"}'), {
        messageId: 'm-open',
        expiration: '1',
        persistent: true,
      });

      await waitFor(
        async () =>
          (await count(ctx.db, 'dead_letters')) === 3 &&
          (await depth(DEAD_LETTER_QUEUE)) === 0 &&
          (await depth(DEAD_QUEUE)) === 0,
        15_000,
        'three dead letters stored, queues empty',
      );
      const rows = await ctx
        .db('dead_letters')
        .orderBy('id')
        .select('queue', 'source_queue', 'exchange', 'routing_key', 'reason', 'body_encrypted');
      expect(rows).toEqual(
        expect.arrayContaining([
          {
            queue: DEAD_LETTER_QUEUE,
            source_queue: REPLIES_QUEUE,
            exchange: REPLIES_EXCHANGE,
            routing_key: 'acme',
            reason: 'rejected',
            body_encrypted: true,
          },
          {
            queue: DEAD_QUEUE,
            source_queue: STATUS_QUEUE,
            exchange: STATUS_EXCHANGE,
            routing_key: STATUS_ROUTING_KEY,
            reason: hubHeaders['x-hub-reason'],
            body_encrypted: true,
          },
          {
            queue: DEAD_LETTER_QUEUE,
            source_queue: 'smart-home.acme.commands',
            exchange: COMMANDS_EXCHANGE,
            routing_key: 'acme',
            reason: 'expired',
            body_encrypted: true,
          },
        ]),
      );
      // Sealed at rest: the reply's text is not in the row.
      const raw = await ctx
        .db('dead_letters')
        .where({ reason: 'rejected' })
        .first<{ body: Buffer }>();
      expect(raw.body.toString('latin1')).not.toContain('could not apply');
      const value = async (name: string) =>
        (await ctx.metrics.registry.getSingleMetric(name)!.get()).values.map((v) => [
          v.labels.queue,
          v.value,
        ]);
      expect(await value('hub_dead_letters_stored_total')).toEqual(
        expect.arrayContaining([
          [DEAD_LETTER_QUEUE, 2],
          [DEAD_QUEUE, 1],
        ]),
      );
      expect(await value('hub_dead_letters_waiting')).toEqual(
        expect.arrayContaining([
          [DEAD_LETTER_QUEUE, 2],
          [DEAD_QUEUE, 1],
        ]),
      );
    },
    CLI_TEST_MS,
  );

  test(
    'list shows what waits, per queue; show gives reason, headers and body (the body only with the key)',
    async () => {
      const all = await hub(['dead-letters', 'list', '--json']);
      expect(all.code).toBe(0);
      expect(lines(all.stdout).map((r) => [r.queue, r.reason, r.state])).toEqual(
        expect.arrayContaining([
          [DEAD_LETTER_QUEUE, 'rejected', 'dead'],
          [DEAD_QUEUE, expect.stringContaining('not an OrderStatusChanged'), 'dead'],
          [DEAD_LETTER_QUEUE, 'expired', 'dead'],
        ]),
      );
      const kitchen = await hub(['dead-letters', 'list', '--queue', DEAD_QUEUE, '--json']);
      expect(lines(kitchen.stdout)).toHaveLength(1);

      const id = await idOf({ reason: 'rejected' });
      const shown = await hub(['dead-letters', 'show', id], { DATA_ENCRYPTION_KEYS: KEYS });
      expect(shown.code).toBe(0);
      const v = JSON.parse(shown.stdout) as {
        reason: string;
        body: { encoding: string; text: string };
        properties: {
          messageId: string;
          headers: { 'x-death': { queue: string; reason: string }[] };
        };
      };
      expect(v.reason).toBe('rejected');
      expect(v.body).toEqual({ encoding: 'utf8', text: reply });
      expect(v.properties.messageId).toBe('m-reply');
      expect(v.properties.headers['x-death'][0]).toMatchObject({
        queue: REPLIES_QUEUE,
        reason: 'rejected',
      });
      const binary = JSON.parse(
        (
          await hub(['dead-letters', 'show', await idOf({ queue: DEAD_QUEUE })], {
            DATA_ENCRYPTION_KEYS: KEYS,
          })
        ).stdout,
      ) as { body: unknown };
      expect(binary.body).toEqual({ encoding: 'base64', text: statusBytes.toString('base64') });

      const sealed = JSON.parse((await hub(['dead-letters', 'show', id])).stdout) as {
        body: { encrypted: boolean; note: string };
      };
      expect(sealed.body).toMatchObject({
        encrypted: true,
        note: expect.stringContaining('DATA_ENCRYPTION_KEYS'),
      });
      // In a checkout, without DATA_ENCRYPTION_KEYS, the key `npm start` generated into its
      // development directory opens it, as it opened it for the hub that sealed it.
      const dev = mkdtempSync(path.join(tmpdir(), 'hub-dev-'));
      writeFileSync(path.join(dev, DEV_DATA_KEYS_FILE), `${KEYS}\n`, { mode: 0o600 });
      const opened = JSON.parse(
        (await hub(['dead-letters', 'show', id], { HUB_DEV_DIR: dev })).stdout,
      ) as { body: unknown };
      expect(opened.body).toEqual({ encoding: 'utf8', text: reply });
      expect((await hub(['dead-letters', 'show', '999999'])).stderr).toContain(
        'no dead letter 999999',
      );
    },
    CLI_TEST_MS,
  );

  test(
    'replay publishes to the original exchange and routing key once, however often and however concurrently it is asked',
    async () => {
      const id = await idOf({ reason: 'rejected' });
      const [a, b] = await Promise.all([
        hub(['dead-letters', 'replay', id]),
        hub(['dead-letters', 'replay', id]),
      ]);
      const outputs = [a, b].map((r) => r.stdout + r.stderr);
      expect(outputs.filter((o) => o.includes(`replayed: ${id}`))).toHaveLength(1);
      expect(
        outputs.filter(
          (o) =>
            o.includes(`dead letter ${id} not replayed: its replay is under way`) ||
            o.includes(`not replayed: already replayed`),
        ),
      ).toHaveLength(1);
      const again = await hub(['dead-letters', 'replay', id]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(
        new RegExp(`dead letter ${id} not replayed: already replayed at `),
      );

      // Back in the replies queue through its exchange, as first published, the death's headers gone.
      const back = await waitFor(
        async () => drain(REPLIES_QUEUE).then((ms) => (ms.length ? ms : null)),
        10_000,
        'the replayed reply',
      );
      expect(back).toHaveLength(1);
      expect(back[0]!.content.toString()).toBe(reply);
      expect(back[0]!.fields).toMatchObject({ exchange: REPLIES_EXCHANGE, routingKey: 'acme' });
      expect(back[0]!.properties).toMatchObject({
        messageId: 'm-reply',
        contentType: 'application/json',
        deliveryMode: 2,
      });
      // x-delivery-count is the quorum queue's own count of this delivery.
      expect(back[0]!.properties.headers).toEqual({ 'x-hub-replay-of': id, 'x-delivery-count': 0 });

      const metric = await ctx.metrics.registry
        .getSingleMetric('hub_dead_letters_replayed_total')!
        .get();
      expect(metric.values).toEqual([{ labels: { queue: DEAD_LETTER_QUEUE }, value: 1 }]);
      expect(
        lines((await hub(['dead-letters', 'list', '--state', 'replayed', '--json'])).stdout).map(
          (r) => r.id,
        ),
      ).toEqual([id]);
    },
    CLI_TEST_MS,
  );

  test(
    'an expired command is not replayed; --all replays the rest and then finds nothing',
    async () => {
      const expired = await idOf({ reason: 'expired' });
      const r = await hub(['dead-letters', 'replay', expired]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`dead letter ${expired} not replayed: it expired in its queue`);

      const all = await hub(['dead-letters', 'replay', '--all', '--queue', DEAD_QUEUE]);
      expect(all.code).toBe(0);
      const kitchenId = await idOf({ queue: DEAD_QUEUE });
      expect(all.stdout).toContain(`replayed: ${kitchenId}`);
      const back = await waitFor(
        async () => drain(STATUS_QUEUE).then((ms) => (ms.length ? ms : null)),
        10_000,
        'the replayed status event',
      );
      expect(back.map((m) => m.content)).toEqual([statusBytes]);
      expect(back[0]!.properties.headers).toEqual({
        'x-hub-replay-of': kitchenId,
        'x-delivery-count': 0,
      });

      expect((await hub(['dead-letters', 'replay', '--all'])).stdout).toContain(
        'no dead letter queued for replay',
      );
      expect(await depth('smart-home.acme.commands')).toBe(0);
      const metric = await ctx.metrics.registry
        .getSingleMetric('hub_dead_letters_replayed_total')!
        .get();
      expect(metric.values).toEqual(
        expect.arrayContaining([
          { labels: { queue: DEAD_QUEUE }, value: 1 },
          { labels: { queue: DEAD_LETTER_QUEUE }, value: 1 },
        ]),
      );
    },
    CLI_TEST_MS,
  );

  test(
    'purge deletes the given dead letters, or all of a queue, and says what it could not',
    async () => {
      const expired = await idOf({ reason: 'expired' });
      const one = await hub(['dead-letters', 'purge', expired]);
      expect(one.stdout).toContain(`purged 1 dead letter(s): ${expired}`);
      const missing = await hub(['dead-letters', 'purge', expired]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain(`dead letter ${expired} not purged`);
      expect(
        (await hub(['dead-letters', 'purge', '--all', '--queue', DEAD_QUEUE])).stdout,
      ).toContain('purged 1 dead letter(s)');
      expect(await count(ctx.db, 'dead_letters')).toBe(1);
      expect((await hub(['dead-letters', 'purge'])).stderr).toContain(
        'give dead-letter ids, or --all',
      );
      expect((await hub(['dead-letters', 'replay', 'abc'])).stderr).toContain(
        'dead-letter ids are numbers',
      );
    },
    CLI_TEST_MS,
  );

  test(
    'a dead letter holding NUL (text PostgreSQL cannot store) in its reason, headers, properties and routing key is kept, its text columns showing U+FFFD and its properties exact',
    async () => {
      const headers = {
        'x-hub-reason': 'type "\u0000" is not a reply type',
        'x-hub-source-queue': REPLIES_QUEUE,
        'x-hub-source-exchange': REPLIES_EXCHANGE,
        'x-partner-trace': 'a\u0000b',
      };
      ch.publish(DEAD_LETTER_EXCHANGE, 'acme\u0000', Buffer.from('{"type":"\u0000"}'), {
        messageId: 'm-\u0000',
        headers,
        persistent: true,
      });
      const stored = () =>
        ctx
          .db('dead_letters')
          .where({ reason: 'type "\uFFFD" is not a reply type' })
          .first<{ id: string; routing_key: string } | undefined>();
      const row = await waitFor(
        async () => ((await depth(DEAD_LETTER_QUEUE)) === 0 ? stored() : undefined),
        15_000,
        'the dead letter stored and its queue empty',
      );
      expect(row.routing_key).toBe('acme\uFFFD');
      const shown = await hub(['dead-letters', 'show', row.id], { DATA_ENCRYPTION_KEYS: KEYS });
      expect(JSON.parse(shown.stdout)).toMatchObject({
        reason: 'type "\uFFFD" is not a reply type',
        properties: { messageId: 'm-\u0000', headers: { 'x-partner-trace': 'a\u0000b' } },
      });
      expect((await hub(['dead-letters', 'purge', row.id])).code).toBe(0);
    },
    CLI_TEST_MS,
  );

  test(
    'a dead letter over DEAD_LETTER_MAX_BODY_BYTES is kept with its reason, headers, size and the beginning of its body, and is never replayed',
    async () => {
      // A partner's 1 MiB reply, moved to the dead-letter exchange by the reply consumer (a reply is at
      // most 16 KiB) as it does, with its reason and source.
      const big = Buffer.from(
        JSON.stringify({ type: 'device.open.result', pad: 'x'.repeat(1024 * 1024) }),
      );
      const reason = `body is ${big.length} bytes; a reply is at most 16384`;
      const headers = {
        'x-hub-reason': reason,
        'x-hub-source-queue': REPLIES_QUEUE,
        'x-hub-source-exchange': REPLIES_EXCHANGE,
        'x-partner-trace': 'trace-7',
      };
      ch.publish(DEAD_LETTER_EXCHANGE, 'acme', big, {
        messageId: 'm-big',
        headers,
        persistent: true,
      });
      const id = await waitFor(
        async () =>
          (await depth(DEAD_LETTER_QUEUE)) === 0 &&
          (await ctx.db('dead_letters').where({ reason }).first<{ id: string } | undefined>())?.id,
        15_000,
        'the oversized dead letter stored and its queue empty',
      );

      // At most the limit in the table (sealed: base64 of it plus the cipher's header), the size as published.
      const size = await ctx
        .db('dead_letters')
        .where({ id })
        .first<{ kept: number; body_bytes: number }>(
          ctx.db.raw('octet_length(body) as kept'),
          'body_bytes',
        );
      expect(size.body_bytes).toBe(big.length);
      expect(size.kept).toBeLessThan(Math.ceil((MAX_BODY * 4) / 3) + 1024);
      expect(await ctx.db('dead_letters').where({ id }).first('body_truncated')).toEqual({
        body_truncated: true,
      });
      const metric = await ctx.metrics.registry
        .getSingleMetric('hub_dead_letters_truncated_total')
        ?.get();
      expect(metric?.values).toEqual([{ labels: { queue: DEAD_LETTER_QUEUE }, value: 1 }]);

      const shown = await hub(['dead-letters', 'show', String(id)], { DATA_ENCRYPTION_KEYS: KEYS });
      expect(shown.code).toBe(0);
      expect(JSON.parse(shown.stdout)).toMatchObject({
        reason,
        sourceQueue: REPLIES_QUEUE,
        exchange: REPLIES_EXCHANGE,
        routingKey: 'acme',
        state: 'dead',
        bytes: big.length,
        bodyTruncated: true,
        notReplayable: {
          code: 'body_truncated',
          reason: expect.stringContaining(
            `its body of ${big.length} bytes was larger than DEAD_LETTER_MAX_BODY_BYTES`,
          ),
        },
        properties: { messageId: 'm-big', headers: { 'x-partner-trace': 'trace-7' } },
        body: {
          truncated: true,
          keptBytes: MAX_BODY,
          encoding: 'utf8',
          text: big.subarray(0, MAX_BODY).toString('utf8'),
        },
      });

      const replay = await hub(['dead-letters', 'replay', String(id)]);
      expect(replay.code).toBe(1);
      expect(replay.stderr).toContain(
        `dead letter ${id} not replayed: its body of ${big.length} bytes was larger than DEAD_LETTER_MAX_BODY_BYTES`,
      );
      expect(replay.stderr).toContain('(body_truncated)');
      expect((await hub(['dead-letters', 'replay', '--all'])).stdout).toContain(
        'no dead letter queued for replay',
      );
      expect(await depth(REPLIES_QUEUE)).toBe(0);
    },
    CLI_TEST_MS,
  );
});
