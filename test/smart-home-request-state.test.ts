// A smart-home request's state is computed by PostgreSQL from the engine's status and the send time:
// migration 15 converts a row in each stored state, the state follows every write of the engine and
// of the smart-home domain, and a write of the state itself is refused.
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createDb } from '../services/core/db.js';
import { migrate } from '../services/core/migrate.js';
import { migrations } from '../services/core/migrations/index.js';
import { PermanentError } from '../services/core/errors.js';
import { FieldCipher } from '../services/core/field-cipher.js';
import { Status, WorkTable, type WorkRow } from '../services/core/engine/work-table.js';
import { replyMessage } from '../services/contracts/smart-home-messages.js';
import { smartHomePartnerResource } from '../services/contracts/smart-home-partner.js';
import { API_VERSION } from '../services/core/resource.js';
import { upsertPartner } from '../services/domains/smart-home/partners.js';
import {
  applySubscriptionReply,
  REQUESTS,
  replayFailedRequests,
  requestChange,
  SUBSCRIPTIONS,
  type RequestRow,
} from '../services/domains/smart-home/requests.js';
import {
  createTestContext,
  DATABASE_URL,
  uniqueName,
  type TestContext,
} from './support/context.js';

const GENERATED_ALWAYS = '428C9';

describe('migration 15', () => {
  test('converts a request in each stored state without loss; the open-request rule still holds', async () => {
    const schema = uniqueName('t_shstate');
    const db = createDb({ DATABASE_URL, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: 2 });
    try {
      await migrate(
        db,
        schema,
        migrations.filter((m) => m.id <= 14),
      );
      const [partner] = await db('smart_home_partners')
        .insert({
          name: 'acme',
          services: ['intercom', 'barrier'],
          command_queue: 'acme.commands',
          oauth_client_id: 'acme',
        })
        .returning('id');
      const sentAt = new Date('2026-01-02T03:04:05Z');
      const updatedAt = new Date('2026-01-03T00:00:00Z');
      // Before 15, state and status were written side by side: one row per combination the code
      // wrote, and one (requested, error) that the engine's failure of a thrown batch left behind.
      const old = {
        fresh: { state: 'ready_for_request', status: 0, attempts: 0, requested_at: null },
        claimedFirst: { state: 'ready_for_request', status: 1, attempts: 1, requested_at: null },
        replayed: { state: 'ready_for_request', status: 0, attempts: 0, requested_at: sentAt },
        replayedClaimed: {
          state: 'ready_for_request',
          status: 1,
          attempts: 1,
          requested_at: sentAt,
        },
        waiting: { state: 'requested', status: 0, attempts: 2, requested_at: sentAt },
        resending: { state: 'requested', status: 1, attempts: 3, requested_at: sentAt },
        requestedNoTime: { state: 'requested', status: 0, attempts: 1, requested_at: null },
        complete: {
          state: 'complete',
          status: 2,
          attempts: 1,
          requested_at: sentAt,
          completed_at: sentAt,
          reply_reason: 'ok',
        },
        refused: {
          state: 'failed',
          status: 3,
          attempts: 1,
          requested_at: sentAt,
          completed_at: sentAt,
          reply_reason: 'no such flat',
          last_error: 'partner refused: no such flat',
        },
        timedOut: {
          state: 'failed',
          status: 3,
          attempts: 4,
          requested_at: sentAt,
          last_error: 'the partner did not reply to 3 attempts',
        },
        engineFailed: {
          state: 'requested',
          status: 3,
          attempts: 2,
          requested_at: sentAt,
          last_error: 'PermanentError: broken',
        },
      } as const;
      const ids: Record<string, string> = {};
      const subs: Record<string, string> = {};
      for (const [name, row] of Object.entries(old)) {
        const [sub] = await db('smart_home_subscriptions')
          .insert({
            tenant_id: `t-${name}`,
            service: 'intercom',
            partner_id: partner.id,
            partner_ref: randomUUID(),
            state: 'connecting',
            last_operation: 'connect',
          })
          .returning('id');
        subs[name] = sub.id;
        const uuid = randomUUID();
        ids[name] = uuid;
        await db('smart_home_requests').insert({
          request_uuid: uuid,
          subscription_id: sub.id,
          tenant_id: `t-${name}`,
          kind: 'connect',
          updated_at: updatedAt,
          ...row,
        });
      }
      const before = new Map(
        (await db('smart_home_requests').select('*')).map((r) => [r.request_uuid as string, r]),
      );

      expect((await migrate(db, schema)).applied).toEqual(['000015_smart_home_request_state']);

      const after = new Map(
        (await db('smart_home_requests').select('*')).map((r) => [r.request_uuid as string, r]),
      );
      const expected: Record<keyof typeof old, { state: string; requested_at: Date | null }> = {
        fresh: { state: 'ready_for_request', requested_at: null },
        claimedFirst: { state: 'ready_for_request', requested_at: null },
        replayed: { state: 'ready_for_request', requested_at: null },
        replayedClaimed: { state: 'ready_for_request', requested_at: null },
        waiting: { state: 'requested', requested_at: sentAt },
        resending: { state: 'requested', requested_at: sentAt },
        requestedNoTime: { state: 'requested', requested_at: updatedAt },
        complete: { state: 'complete', requested_at: sentAt },
        refused: { state: 'failed', requested_at: sentAt },
        timedOut: { state: 'failed', requested_at: sentAt },
        engineFailed: { state: 'failed', requested_at: sentAt },
      };
      for (const [name, want] of Object.entries(expected)) {
        const was = before.get(ids[name]!)!;
        const now = after.get(ids[name]!)!;
        expect({ name, ...now }).toEqual({ name, ...was, ...want });
      }

      // The state is no longer written by anyone.
      await expect(
        db('smart_home_requests').where({ request_uuid: ids.fresh }).update({ state: 'complete' }),
      ).rejects.toMatchObject({ code: GENERATED_ALWAYS });
      // Still at most one open request per subscription; a finished one does not count.
      const second = (name: string) =>
        db('smart_home_requests').insert({
          request_uuid: randomUUID(),
          subscription_id: subs[name],
          tenant_id: `t-${name}`,
          kind: 'disconnect',
        });
      await expect(second('waiting')).rejects.toMatchObject({ code: '23505' });
      await expect(second('engineFailed')).resolves.toBeDefined();
    } finally {
      await db.raw(`drop schema if exists "${schema}" cascade`);
      await db.destroy();
    }
  });
});

describe('the derived state', () => {
  let ctx: TestContext;
  let table: WorkTable;
  const cipher = new FieldCipher(new Map([['k1', randomBytes(32)]]));
  let tenantSeq = 0;

  beforeAll(async () => {
    ctx = await createTestContext('shstate');
    await upsertPartner(
      ctx.db,
      smartHomePartnerResource.parse({
        apiVersion: API_VERSION,
        kind: 'SmartHomePartner',
        metadata: { name: 'acme' },
        spec: { services: ['intercom', 'barrier'] },
      }),
    );
    table = new WorkTable(ctx.db, ctx.metrics, ctx.logger, {
      table: REQUESTS,
      reconciler: 'smart-home-requests',
      leaseMs: 30_000,
      maxAttempts: 3,
      failExhaustedOnClaim: false,
    });
  });
  afterAll(async () => {
    await ctx.close();
  });

  /** A tenant's connect request, written as the API writes it. */
  async function newRequest(): Promise<string> {
    const r = await requestChange(ctx.db, cipher, {
      tenantId: `t-${++tenantSeq}`,
      service: 'intercom',
      kind: 'connect',
    });
    if (!r.ok) throw new Error(r.refusal.message);
    expect(r.request.state).toBe('ready_for_request');
    return r.request.id;
  }
  const row = async (uuid: string): Promise<RequestRow> =>
    ctx.db<RequestRow>(REQUESTS).where({ request_uuid: uuid }).first() as Promise<RequestRow>;
  const state = async (uuid: string) => (await row(uuid)).state;
  /** Claims exactly this request (others of the test may be due too). */
  const claim = async (uuid: string, owner: string) =>
    (await table.claim<WorkRow>(owner, 10, { sql: 'request_uuid = ?', bindings: [uuid] }))[0]!;
  /** The bridge's mark before it publishes the command. */
  const markSent = (id: string, owner: string) =>
    ctx
      .db(REQUESTS)
      .where({ id, locked_by: owner, status: Status.IN_PROGRESS })
      .update({ requested_at: ctx.db.fn.now() });
  const reply = async (uuid: string, outcome: 'success' | 'failure') => {
    const r = await row(uuid);
    const sub = await ctx.db(SUBSCRIPTIONS).where({ id: r.subscription_id }).first();
    return applySubscriptionReply(
      ctx.db,
      replyMessage.parse({
        messageId: randomUUID(),
        correlationId: uuid,
        type: 'subscription.connect.result',
        service: 'intercom',
        tenantRef: sub.partner_ref,
        createdAt: new Date().toISOString(),
        payload: outcome === 'success' ? { outcome } : { outcome, reason: 'no such flat' },
      }),
      'acme',
    );
  };

  test('follows claim, release, send, retry, the engine failing a batch, replay and completion', async () => {
    const uuid = await newRequest();
    let claimed = await claim(uuid, 'o1');
    expect(claimed).toMatchObject({ status: Status.IN_PROGRESS, state: 'ready_for_request' });
    await table.release([claimed.id], 'o1');
    expect(await row(uuid)).toMatchObject({
      status: Status.NEW,
      attempts: 0,
      state: 'ready_for_request',
    });

    claimed = await claim(uuid, 'o1');
    expect(await markSent(claimed.id, 'o1')).toBe(1);
    expect(await state(uuid)).toBe('requested');
    // The broker did not confirm: retried later, still requested.
    await table.retryAt(
      [claimed.id],
      'o1',
      new Date(Date.now() - 1_000),
      'Error: no confirm',
      'transient',
    );
    expect(await row(uuid)).toMatchObject({ status: Status.NEW, state: 'requested' });
    claimed = await claim(uuid, 'o2');
    expect(claimed).toMatchObject({ status: Status.IN_PROGRESS, state: 'requested', attempts: 2 });

    // The batch handler threw a permanent error: the engine alone fails the row, and the state follows.
    await table.settleError([claimed], 'o2', new PermanentError('the command cannot be built'));
    expect(await row(uuid)).toMatchObject({ status: Status.ERROR, state: 'failed' });

    expect(await replayFailedRequests(ctx.db, { requestIds: [uuid] })).toEqual([uuid]);
    expect(await row(uuid)).toMatchObject({
      status: Status.NEW,
      attempts: 0,
      state: 'ready_for_request',
      requested_at: null,
      last_error: null,
    });

    claimed = await claim(uuid, 'o3');
    await markSent(claimed.id, 'o3');
    expect(await state(uuid)).toBe('requested');
    expect(await table.complete([claimed.id], 'o3')).toEqual([claimed.id]);
    expect(await row(uuid)).toMatchObject({ status: Status.DONE, state: 'complete' });
  });

  test("follows the partner's replies, including a late one after the bridge gave up", async () => {
    const done = await newRequest();
    const claimed = await claim(done, 'o1');
    await markSent(claimed.id, 'o1');
    expect((await reply(done, 'success')).result).toBe('applied');
    expect(await row(done)).toMatchObject({
      status: Status.DONE,
      state: 'complete',
      locked_by: null,
    });

    const refused = await newRequest();
    expect((await reply(refused, 'failure')).result).toBe('applied');
    expect(await row(refused)).toMatchObject({
      status: Status.ERROR,
      state: 'failed',
      reply_reason: 'no such flat',
    });

    const late = await newRequest();
    const c = await claim(late, 'o1');
    await markSent(c.id, 'o1');
    await table.fail([c.id], 'o1', 'the partner did not reply to 3 attempts');
    expect(await state(late)).toBe('failed');
    expect((await reply(late, 'success')).result).toBe('applied_late');
    expect(await row(late)).toMatchObject({ status: Status.DONE, state: 'complete' });
  });

  test('a write of the state itself is refused, on insert and on update', async () => {
    const uuid = await newRequest();
    await expect(
      ctx.db(REQUESTS).where({ request_uuid: uuid }).update({ state: 'complete' }),
    ).rejects.toMatchObject({ code: GENERATED_ALWAYS });
    const r = await row(uuid);
    await expect(
      ctx.db(REQUESTS).insert({
        request_uuid: randomUUID(),
        subscription_id: r.subscription_id,
        tenant_id: r.tenant_id,
        kind: 'disconnect',
        state: 'failed',
        status: Status.ERROR,
      }),
    ).rejects.toMatchObject({ code: GENERATED_ALWAYS });
    expect(await row(uuid)).toMatchObject({ status: Status.NEW, state: 'ready_for_request' });
  });
});
