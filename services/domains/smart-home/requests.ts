// Subscriptions and their connect/disconnect requests in PostgreSQL: the tenant's actions, the
// partner's replies and the views the app reads. Every change runs in one transaction that locks
// the subscription row, so concurrent requests and duplicate replies serialise and change nothing twice.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { replayFailedRows, Status } from '../../core/engine/work-table.js';
import { PgCode, toError } from '../../core/errors.js';
import type { TenantEventPublisher } from '../../core/tenant-events.js';
import type { FieldCipher } from '../../core/field-cipher.js';
import {
  decideTenantAction,
  erasesPersonalData,
  REQUEST_STATES,
  subscriptionAfter,
  subscriptionDuring,
  type FailureCode,
  type Refusal,
  type RequestKind,
  type RequestState,
  type Service,
  type SubscriptionState,
} from './domain.js';
import type { PersonalData, ReplyMessage } from '../../contracts/smart-home-messages.js';
import {
  buildSubscriptionChanged,
  type RequestView,
  type SubscriptionView,
  type TenantEvent,
} from '../../contracts/tenant-events.js';
import { partnerForService } from './partners.js';

export const SUBSCRIPTIONS = 'smart_home_subscriptions';
export const REQUESTS = 'smart_home_requests';

/** SQL: the request row `alias` is its subscription's latest (what the tenant last asked for). */
const isLatestRequest = (alias: string) =>
  `${alias}.id = (select max(l.id) from ${REQUESTS} l where l.subscription_id = ${alias}.subscription_id)`;

export interface SubscriptionRow {
  id: string;
  tenant_id: string;
  service: Service;
  partner_id: string;
  partner_ref: string;
  state: SubscriptionState;
  last_operation: RequestKind;
  last_error: string | null;
  state_changed_at: Date;
}

export interface RequestRow {
  id: string;
  request_uuid: string;
  subscription_id: string;
  tenant_id: string;
  kind: RequestKind;
  /** Generated from status and requested_at (see REQUEST_STATES); read only. */
  state: RequestState;
  /** When the command was last sent in this round of attempts; null until then. */
  requested_at: Date | null;
  completed_at: Date | null;
  attempts: number;
  status: number;
  reply_reason: string | null;
  last_error: string | null;
  created_at: Date;
}

// What tenants read of requests and subscriptions, over REST and in `subscription.changed`.
export type { RequestView, SubscriptionView };

/**
 * A partner's reply completes a request (`completed_at`), whatever its outcome; the bridge giving up
 * (no reply after the last attempt, or a command it could not send) fails it without completing it.
 */
function failureCodeOf(r: RequestRow): FailureCode | null {
  if (r.state !== 'failed') return null;
  return r.completed_at ? 'partner_refused' : 'partner_unavailable';
}

function requestView(r: RequestRow): RequestView {
  return {
    id: r.request_uuid,
    kind: r.kind,
    state: r.state,
    attempts: r.attempts,
    requestedAt: r.requested_at ? r.requested_at.toISOString() : null,
    failureCode: failureCodeOf(r),
  };
}

export function subscriptionView(
  s: SubscriptionRow,
  last: RequestRow | undefined,
): SubscriptionView {
  return {
    service: s.service,
    state: s.state,
    stateChangedAt: s.state_changed_at.toISOString(),
    lastRequest: last ? requestView(last) : null,
  };
}

/**
 * Pushes a subscription's new state to the tenant's sockets. A push Redis did not take is not
 * retried: the state is committed, an api replica whose subscription was lost re-delivers it from
 * the row when it is back, and the app reads it over REST after its socket's `ready`.
 */
export async function pushSubscriptionChange(
  events: TenantEventPublisher<TenantEvent>,
  logger: { warn(obj: object, msg: string): void },
  tenantId: string,
  subscription: SubscriptionView,
): Promise<void> {
  await events
    .publish(tenantId, buildSubscriptionChanged(subscription))
    .catch((e: unknown) =>
      logger.warn(
        { err: toError(e) },
        'could not push a subscription change; the app reads it over REST',
      ),
    );
}

type ChangeRefusal = Refusal | { code: 'no_partner' | 'idempotency_key_reused'; message: string };

type ChangeResult =
  | { ok: true; created: boolean; subscription: SubscriptionView; request: RequestView }
  | { ok: false; refusal: ChangeRefusal };

interface ChangeInput {
  tenantId: string;
  service: Service;
  kind: RequestKind;
  personalData?: PersonalData;
  biometricsConsent?: boolean;
  idempotencyKey?: string;
}

/** Context of the personal-data ciphertext: it decrypts only on its own request. */
export const personalDataContext = (requestUuid: string) =>
  `smart_home_requests.personal_data:${requestUuid}`;

/**
 * A tenant asks to connect or disconnect. The state machine decides; an allowed change moves the
 * subscription to connecting/disconnecting and inserts a `ready_for_request` row for the bridge.
 * A repeated Idempotency-Key returns the first answer and changes nothing.
 */
export async function requestChange(
  db: Knex,
  cipher: FieldCipher,
  input: ChangeInput,
): Promise<ChangeResult> {
  try {
    return await changeOnce(db, cipher, input);
  } catch (thrown) {
    // Two first requests of one tenant raced to insert the subscription (or the same key): the
    // loser runs again and now sees the winner's rows.
    if ((thrown as { code?: string }).code !== PgCode.UNIQUE_VIOLATION) throw thrown;
    return changeOnce(db, cipher, input);
  }
}

async function changeOnce(
  db: Knex,
  cipher: FieldCipher,
  input: ChangeInput,
): Promise<ChangeResult> {
  return db.transaction(async (trx) => {
    // The lock serialises requests on an existing subscription, so the key is looked up after it:
    // a request that waited sees the committed request of the one it waited for.
    const existing = await trx<SubscriptionRow>(SUBSCRIPTIONS)
      .where({ tenant_id: input.tenantId, service: input.service })
      .forUpdate()
      .first();
    if (input.idempotencyKey) {
      const seen: RequestRow | undefined = await trx(REQUESTS)
        .where({ tenant_id: input.tenantId, idempotency_key: input.idempotencyKey })
        .first();
      const sub =
        seen &&
        (await trx<SubscriptionRow>(SUBSCRIPTIONS).where({ id: seen.subscription_id }).first());
      if (seen && sub) {
        if (seen.kind !== input.kind || sub.service !== input.service) {
          return {
            ok: false,
            refusal: {
              code: 'idempotency_key_reused',
              message:
                'This Idempotency-Key was used for another request; use a new key for each request.',
            },
          };
        }
        return {
          ok: true,
          created: false,
          subscription: subscriptionView(sub, seen),
          request: requestView(seen),
        };
      }
    }
    const decision = decideTenantAction(existing?.state, input.kind);
    if (!decision.allowed) return { ok: false, refusal: decision.refusal };

    // A (re)connection goes to whichever partner runs the service now; a disconnection to the one connected.
    let partnerId = existing?.partner_id;
    if (input.kind === 'connect') {
      const partner = await partnerForService(trx, input.service);
      if (!partner) {
        return {
          ok: false,
          refusal: {
            code: 'no_partner',
            message: `No partner runs the ${input.service} service yet; try again later.`,
          },
        };
      }
      partnerId = partner.id;
    }
    const next = subscriptionDuring(input.kind);
    const change = {
      partner_id: partnerId,
      state: next,
      last_operation: input.kind,
      last_error: null,
      state_changed_at: trx.fn.now(),
      updated_at: trx.fn.now(),
    };
    const [sub]: SubscriptionRow[] = existing
      ? await trx(SUBSCRIPTIONS).where({ id: existing.id }).update(change).returning('*')
      : await trx(SUBSCRIPTIONS)
          .insert({
            ...change,
            tenant_id: input.tenantId,
            service: input.service,
            partner_ref: randomUUID(),
          })
          .returning('*');
    if (!sub) throw new Error('subscription write returned no row');

    const requestUuid = randomUUID();
    const [request]: RequestRow[] = await trx(REQUESTS)
      .insert({
        request_uuid: requestUuid,
        subscription_id: sub.id,
        tenant_id: input.tenantId,
        kind: input.kind,
        idempotency_key: input.idempotencyKey ?? null,
        biometrics_consent: input.biometricsConsent ?? false,
        personal_data: input.personalData
          ? cipher.encrypt(input.personalData, personalDataContext(requestUuid))
          : null,
      })
      .returning('*');
    if (!request) throw new Error('request insert returned no row');
    return {
      ok: true,
      created: true,
      subscription: subscriptionView(sub, request),
      request: requestView(request),
    };
  });
}

/** The tenant's subscriptions with their latest request each. */
export async function listSubscriptions(db: Knex, tenantId: string): Promise<SubscriptionView[]> {
  const subs = await db<SubscriptionRow>(SUBSCRIPTIONS)
    .where({ tenant_id: tenantId })
    .orderBy('service');
  const latest = await latestRequests(db, subs);
  return subs.map((s) => subscriptionView(s, latest.get(s.id)));
}

/**
 * Subscriptions of `tenants` whose state changed in the last `lookbackMs`, the latest `limit`
 * changes, in the order they changed, with their latest request each. A tenant has a row per
 * service, found by the (tenant_id, service) index.
 */
export async function subscriptionsChangedSince(
  db: Knex,
  tenants: readonly string[],
  lookbackMs: number,
  limit: number,
): Promise<{ tenantId: string; subscription: SubscriptionView }[]> {
  if (tenants.length === 0) return [];
  const subs = await db<SubscriptionRow>(SUBSCRIPTIONS)
    .whereIn('tenant_id', tenants)
    .where(
      'state_changed_at',
      '>=',
      db.raw(`now() - make_interval(secs => ?::double precision / 1000)`, [lookbackMs]),
    )
    .orderBy('state_changed_at', 'desc')
    .limit(limit);
  const latest = await latestRequests(db, subs);
  return subs
    .reverse()
    .map((s) => ({ tenantId: s.tenant_id, subscription: subscriptionView(s, latest.get(s.id)) }));
}

/** Each subscription's latest request, by subscription id (smart_home_requests_subscription). */
async function latestRequests(
  db: Knex,
  subs: readonly SubscriptionRow[],
): Promise<Map<string, RequestRow>> {
  if (subs.length === 0) return new Map();
  const latest = await db<RequestRow>(REQUESTS)
    .distinctOn('subscription_id')
    .whereIn(
      'subscription_id',
      subs.map((s) => s.id),
    )
    .orderBy([{ column: 'subscription_id' }, { column: 'id', order: 'desc' }]);
  return new Map(latest.map((r) => [r.subscription_id, r]));
}

type ReplyResult =
  'applied' | 'applied_late' | 'duplicate' | 'unknown' | 'mismatched_partner' | 'mismatched_type';

interface AppliedReply {
  result: ReplyResult;
  /** Set when applied: whom to tell and what. */
  tenantId?: string;
  subscription?: SubscriptionView;
}

const KIND_OF_REPLY: Record<string, RequestKind | undefined> = {
  'subscription.connect.result': 'connect',
  'subscription.disconnect.result': 'disconnect',
};

/**
 * Applies a partner's reply to a connect/disconnect request. A request still waiting
 * (ready_for_request or requested) changes. So does one that failed because no reply came in time,
 * while it is still its subscription's latest request: the partner did act on it, and its state
 * wins over our timeout. Any other reply for a finished request is a duplicate.
 */
export async function applySubscriptionReply(
  db: Knex,
  reply: ReplyMessage,
  partnerName: string,
): Promise<AppliedReply> {
  return db.transaction(async (trx) => {
    const row = await trx(`${REQUESTS} as r`)
      .join(`${SUBSCRIPTIONS} as s`, 's.id', 'r.subscription_id')
      .join('smart_home_partners as p', 'p.id', 's.partner_id')
      .where('r.request_uuid', reply.correlationId)
      .select(
        'r.id',
        'r.kind',
        'r.state',
        'r.subscription_id',
        'r.completed_at',
        'p.name as partner',
      )
      .select(trx.raw(`${isLatestRequest('r')} as latest`))
      .forUpdate()
      .first<
        | {
            id: string;
            kind: RequestKind;
            state: RequestState;
            subscription_id: string;
            completed_at: Date | null;
            partner: string;
            latest: boolean;
          }
        | undefined
      >();
    if (!row) return { result: 'unknown' };
    if (row.partner !== partnerName) return { result: 'mismatched_partner' };
    if (KIND_OF_REPLY[reply.type] !== row.kind) return { result: 'mismatched_type' };
    const waiting = row.state === 'ready_for_request' || row.state === 'requested';
    // completed_at is set by a partner's reply only: a failed request without it was given up by us.
    const lateForTimedOut = row.state === 'failed' && row.completed_at === null && row.latest;
    if (!waiting && !lateForTimedOut) return { result: 'duplicate' };

    const outcome = reply.payload.outcome === 'success' ? 'complete' : 'failed';
    const reason = reply.payload.reason ?? null;
    const [request]: RequestRow[] = await trx(REQUESTS)
      .where({ id: row.id })
      .update({
        status: outcome === 'complete' ? Status.DONE : Status.ERROR,
        completed_at: trx.fn.now(),
        reply_reason: reason,
        last_error: outcome === 'failed' ? `partner refused: ${reason ?? 'no reason given'}` : null,
        locked_by: null,
        locked_until: null,
        updated_at: trx.fn.now(),
      })
      .returning('*');
    const sub = await finishSubscription(trx, row.subscription_id, row.kind, outcome, reason);
    return {
      result: waiting ? 'applied' : 'applied_late',
      tenantId: sub.tenant_id,
      subscription: subscriptionView(sub, request),
    };
  });
}

/** Moves the subscription to where a finished request leaves it; erases personal data after disconnection. */
export async function finishSubscription(
  trx: Knex.Transaction,
  subscriptionId: string,
  kind: RequestKind,
  outcome: 'complete' | 'failed',
  error: string | null,
): Promise<SubscriptionRow> {
  const [sub]: SubscriptionRow[] = await trx(SUBSCRIPTIONS)
    .where({ id: subscriptionId })
    .update({
      state: subscriptionAfter(kind, outcome),
      last_error: outcome === 'failed' ? error : null,
      state_changed_at: trx.fn.now(),
      updated_at: trx.fn.now(),
    })
    .returning('*');
  if (!sub) throw new Error(`subscription ${subscriptionId} vanished`);
  if (erasesPersonalData(kind, outcome)) {
    await trx(REQUESTS)
      .where({ subscription_id: subscriptionId })
      .whereNotNull('personal_data')
      .update({ personal_data: null });
  }
  return sub;
}

/**
 * Operator replay: failed requests (the given UUIDs, or all) go back to `ready_for_request` with
 * fresh attempts and no send time, and their subscriptions back to connecting/disconnecting. Only a
 * subscription's latest request is replayed: an older failure was superseded by what the tenant did since.
 */
export async function replayFailedRequests(
  db: Knex,
  o: { requestIds?: string[] } = {},
): Promise<string[]> {
  return db.transaction(async (trx) => {
    const rows = await replayFailedRows<RequestRow>(
      trx,
      REQUESTS,
      (q) => {
        q.whereRaw(isLatestRequest(REQUESTS));
        return o.requestIds?.length ? q.whereIn('request_uuid', o.requestIds) : q;
      },
      { reset: { requested_at: null, completed_at: null, reply_reason: null, last_error: null } },
    );
    for (const r of rows) {
      await trx(SUBSCRIPTIONS)
        .where({ id: r.subscription_id })
        .update({
          state: subscriptionDuring(r.kind),
          last_error: null,
          state_changed_at: trx.fn.now(),
          updated_at: trx.fn.now(),
        });
    }
    return rows.map((r) => r.request_uuid);
  });
}

interface RequestListing {
  id: string;
  tenant: string;
  service: Service;
  kind: RequestKind;
  state: RequestState;
  attempts: number;
  requestedAt: Date | null;
  lastError: string | null;
}

export async function listRequests(
  db: Knex,
  o: { state?: RequestState; limit: number },
): Promise<RequestListing[]> {
  const q = db(`${REQUESTS} as r`)
    .join(`${SUBSCRIPTIONS} as s`, 's.id', 'r.subscription_id')
    .select(
      'r.request_uuid as id',
      'r.tenant_id as tenant',
      's.service',
      'r.kind',
      'r.state',
      'r.attempts',
      'r.requested_at as requestedAt',
      'r.last_error as lastError',
    )
    .orderBy('r.id', 'desc')
    .limit(o.limit);
  if (o.state) q.where('r.state', o.state);
  return q;
}

/** Requests per state, every state present (0 when none): the summary above `hub smart-home list`. */
export async function countRequests(db: Knex): Promise<Record<RequestState, number>> {
  const rows = await db(REQUESTS)
    .select('state')
    .count<{ state: RequestState; count: string }[]>('* as count')
    .groupBy('state');
  const counts = Object.fromEntries(REQUEST_STATES.map((s) => [s, 0])) as Record<
    RequestState,
    number
  >;
  for (const r of rows) counts[r.state] = Number(r.count);
  return counts;
}
