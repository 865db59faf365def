// The bridge's reconciler over connect/disconnect requests: a due request is
// marked `requested` with the time, its command is published with a broker confirm, and it comes
// due again when the partner's reply deadline passes (growing with each attempt). A request whose
// last attempt went unanswered, or that cannot be sent at all, fails and the tenant sees it.
import type { Knex } from 'knex';
import { classifyError, PermanentError } from '../../core/errors.js';
import { eachRow } from '../../core/engine/per-row.js';
import { heldBy, Status, type WorkRow, type WorkTable } from '../../core/engine/work-table.js';
import type { FieldCipher } from '../../core/field-cipher.js';
import type { Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import type { TenantEventPublisher } from '../../core/tenant-events.js';
import type { TenantEvent } from '../../contracts/tenant-events.js';
import type { SmartHomeConfig } from './config.js';
import { replyDeadlineMs, type RequestKind, type RequestState, type Service } from './domain.js';
import { buildCommand, type PersonalData } from '../../contracts/smart-home-messages.js';
import type { CommandPublisher } from './publisher.js';
import {
  finishSubscription,
  personalDataContext,
  pushSubscriptionChange,
  REQUESTS,
  SUBSCRIPTIONS,
  subscriptionView,
  type RequestRow,
} from './requests.js';

export const RECONCILER = 'smart-home-requests';

export interface ClaimedRequest extends WorkRow {
  request_uuid: string;
  subscription_id: string;
  tenant_id: string;
  kind: RequestKind;
  state: RequestState;
  personal_data: Buffer | null;
  biometrics_consent: boolean;
  created_at: Date;
}

interface Target {
  id: string;
  service: Service;
  partner_ref: string;
  partner: string;
  command_queue: string;
}

interface SenderDeps {
  db: Knex;
  table: WorkTable;
  publisher: CommandPublisher;
  cipher: FieldCipher;
  events: TenantEventPublisher<TenantEvent>;
  config: SmartHomeConfig;
  logger: Logger;
  metrics: Metrics;
  random?: () => number;
}

export function requestSender(d: SenderDeps) {
  const random = d.random ?? Math.random;

  /** Fails the request and its subscription's pending change, if this owner still holds it. */
  async function fail(row: ClaimedRequest, owner: string, error: string): Promise<void> {
    const done = await d.db.transaction(async (trx) => {
      const [request]: RequestRow[] = await trx(REQUESTS)
        .where({ id: row.id })
        .where(heldBy(owner))
        .update({
          status: Status.ERROR,
          locked_by: null,
          locked_until: null,
          last_error: error,
          updated_at: trx.fn.now(),
        })
        .returning('*');
      if (!request) return undefined;
      const sub = await finishSubscription(trx, row.subscription_id, row.kind, 'failed', error);
      return [sub, request] as const;
    });
    if (!done) return;
    d.metrics.reconcileAttempts.inc({ reconciler: RECONCILER, outcome: 'failed' });
    d.logger.warn(
      { requestId: row.request_uuid, correlationId: row.request_uuid, kind: row.kind, error },
      'smart-home request failed',
    );
    await pushSubscriptionChange(d.events, d.logger, row.tenant_id, subscriptionView(...done));
  }

  async function send(row: ClaimedRequest, target: Target, owner: string): Promise<void> {
    const marked = await d
      .db(REQUESTS)
      .where({ id: row.id })
      .where(heldBy(owner))
      .update({ requested_at: d.db.fn.now(), updated_at: d.db.fn.now() });
    if (marked === 0) return; // the reply arrived meanwhile, or the lease passed to another replica
    const payload = row.kind === 'connect' ? connectPayload(row) : {};
    const command = buildCommand({
      type: row.kind === 'connect' ? 'subscription.connect' : 'subscription.disconnect',
      correlationId: row.request_uuid,
      service: target.service,
      tenantRef: target.partner_ref,
      createdAt: row.created_at,
      attempt: row.attempts,
      payload,
    });
    await d.publisher.publish(
      { name: target.partner, commandQueue: target.command_queue },
      command,
    );
    const waitMs = Math.round(
      replyDeadlineMs(row.attempts, d.config.SMART_HOME_REPLY_TIMEOUT_MS) * (1 + 0.2 * random()),
    );
    await d
      .db(REQUESTS)
      .where({ id: row.id })
      .where(heldBy(owner))
      .update({
        status: Status.NEW,
        next_attempt_at: new Date(Date.now() + waitMs),
        locked_by: null,
        locked_until: null,
        last_error: null,
        updated_at: d.db.fn.now(),
      });
    d.metrics.reconcileAttempts.inc({ reconciler: RECONCILER, outcome: 'sent' });
    d.logger.info(
      {
        requestId: row.request_uuid,
        correlationId: row.request_uuid,
        kind: row.kind,
        attempt: row.attempts,
        partner: target.partner,
        replyWithinMs: waitMs,
      },
      'smart-home command sent',
    );
  }

  function connectPayload(row: ClaimedRequest): {
    personalData: PersonalData;
    biometricsConsent: boolean;
  } {
    if (!row.personal_data) {
      throw new PermanentError(
        'the connect request carries no personal data (erased or never given)',
      );
    }
    let personalData: PersonalData;
    try {
      personalData = d.cipher.decrypt<PersonalData>(
        row.personal_data,
        personalDataContext(row.request_uuid),
      );
    } catch (cause) {
      throw new PermanentError(
        'the personal data of the request cannot be decrypted with the configured keys',
        { cause },
      );
    }
    return { personalData, biometricsConsent: row.biometrics_consent };
  }

  return async (batch: ClaimedRequest[], owner: string, signal: AbortSignal): Promise<void> => {
    const targets = new Map<string, Target>(
      (
        (await d
          .db(`${REQUESTS} as r`)
          .join(`${SUBSCRIPTIONS} as s`, 's.id', 'r.subscription_id')
          .join('smart_home_partners as p', 'p.id', 's.partner_id')
          .whereIn(
            'r.id',
            batch.map((r) => r.id),
          )
          .select(
            'r.id',
            's.service',
            's.partner_ref',
            'p.name as partner',
            'p.command_queue',
          )) as Target[]
      ).map((t) => [String(t.id), t]),
    );
    await eachRow(
      d.table,
      d.logger,
      {
        warning: 'smart-home command not sent',
        describe: (row) => ({ requestId: row.request_uuid }),
        async handle(row) {
          const target = targets.get(row.id);
          if (row.attempts > d.config.SMART_HOME_MAX_ATTEMPTS || !target) {
            await fail(
              row,
              owner,
              target
                ? `the partner did not reply to ${d.config.SMART_HOME_MAX_ATTEMPTS} attempts`
                : 'the subscription or its partner no longer exists',
            );
            return;
          }
          await send(row, target, owner);
        },
        async settle(row, _owner, err) {
          const outcome = d.table.decide(row, classifyError(err), err);
          if (outcome.kind === 'retry') {
            await d.table.retryAt([row.id], owner, outcome.at, outcome.error, outcome.reason);
          } else await fail(row, owner, outcome.error);
          return outcome;
        },
      },
      batch,
      owner,
      signal,
    );
  };
}
