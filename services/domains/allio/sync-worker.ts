// The ALLIO sync worker: handles a batch of due upsert tasks of one integration and entity (up to
// 100 ids, so one ALLIO request serves many tasks; fair-claim.ts picks them), fetches the records
// through the shared rate limiter, and writes the CRM rows and the task outcomes in one transaction
// that first checks the tasks are still leased to this worker.
import type { Knex } from 'knex';
import { PermanentError, toError } from '../../core/errors.js';
import type { WorkRow, WorkTable } from '../../core/engine/work-table.js';
import type { Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import { RateLimiterClosedError, type Grant } from '../../core/ratelimit/limiter.js';
import type { AllioClient } from './client.js';
import { batchIds, parseIds, type Entity } from './commands.js';
import { writeRecords } from './crm-writer.js';
import { findById, resolveToken, type Integration } from './integrations.js';
import {
  allioDealCardSchema,
  allioReservationSchema,
  mapDealCard,
  mapReservation,
  type MappedRecord,
} from './mapping.js';

export interface TaskRow extends WorkRow {
  integration_id: string;
  entity: Entity;
  op: 'upsert' | 'delete';
  command: string;
  external_ids: string;
  webhook_id: string | null;
  /** The integration's settings as the claim read them (fair-claim.ts); absent, they are looked up. */
  integration?: Integration;
}

interface SyncWorkerDeps {
  db: Knex;
  table: WorkTable;
  client: AllioClient;
  metrics: Metrics;
  logger: Logger;
  secretsDir: string;
  /** The slot the claim took for this owner's batch (fair-claim.ts); its first request uses it. */
  takeSlot?(owner: string): Grant | undefined;
}

export function syncHandler(d: SyncWorkerDeps) {
  const log = d.logger.child({ reconciler: d.table.reconciler });
  return async (batch: TaskRow[], owner: string, signal: AbortSignal): Promise<void> => {
    const first = batch[0];
    if (!first) return;
    const { entity } = first;
    const taskIds = batch.map((t) => t.id);
    let slot = d.takeSlot?.(owner);
    try {
      const integration = first.integration ?? (await findById(d.db, first.integration_id));
      if (!integration) {
        throw new PermanentError(`integration ${first.integration_id} no longer exists`);
      }
      const token = await resolveToken(integration, d.secretsDir);
      const chunks = batchIds(batch.map((t) => parseIds(t.external_ids)));
      const items: unknown[] = [];
      for (const ids of chunks) {
        const grant = slot;
        slot = undefined;
        items.push(
          ...(await d.client.list(integration.api_base_url, token, entity, { ids }, signal, grant)),
        );
      }
      const mapped = mapItems(entity, items, log);
      const requested = chunks.reduce((n, c) => n + c.length, 0);
      const missing = requested - new Set(mapped.map((m) => m.record.external_id)).size;
      const written = await d.db.transaction(async (trx) => {
        // The fence: tasks first, and only while this worker still holds their leases. Records are
        // written only for the tasks it completed; a task taken over by another replica gets that
        // replica's (newer) answer, never this one's.
        const done = new Set(
          await d.table.complete(taskIds, owner, trx, { finished_at: trx.fn.now() }),
        );
        if (done.size === 0) return [];
        const owned = done.size === batch.length ? mapped : ownedRecords(batch, done, mapped);
        await writeRecords(trx, integration.id, entity, owned);
        return owned;
      });
      // Tasks this worker no longer held were counted and logged as lost leases by complete().
      if (written.length < mapped.length) return;
      d.metrics.allioRecords.inc({ entity }, mapped.length);
      if (missing > 0) d.metrics.allioRecordsMissing.inc({ entity }, missing);
      const invalidPhones = mapped.filter(
        (m) => m.contact && m.contact.phone === null && m.contact.phone_raw,
      ).length;
      if (invalidPhones > 0) d.metrics.allioInvalidPhones.inc(invalidPhones);
      log.debug(
        { tasks: taskIds, webhookIds: webhookIds(batch), records: mapped.length, missing, entity },
        'tasks synced',
      );
    } catch (thrown) {
      // Shutdown: before the request went out (the limiter was closed) or after patience ran out.
      if (signal.aborted || thrown instanceof RateLimiterClosedError) {
        await d.table.release(taskIds, owner);
        return;
      }
      const err = toError(thrown);
      const outcomes = await d.table.settleError(batch, owner, err);
      log.warn(
        {
          err,
          tasks: taskIds,
          webhookIds: webhookIds(batch),
          outcome: outcomes[0]?.kind,
          reason: outcomes[0]?.reason,
        },
        'sync batch did not complete',
      );
    } finally {
      // Failed before its first request (the integration or its token): the slot frees at once.
      if (slot) d.client.unusedSlot(slot);
    }
  };
}

/** The records whose ids belong to one of the `done` tasks of the batch. */
function ownedRecords(
  batch: readonly TaskRow[],
  done: ReadonlySet<string>,
  mapped: readonly MappedRecord[],
): MappedRecord[] {
  const ids = new Set(
    batch
      .filter((t) => done.has(String(t.id)))
      .flatMap((t) => parseIds(t.external_ids).map(String)),
  );
  return mapped.filter((m) => ids.has(m.record.external_id));
}

/** The webhooks behind a batch: they lead back to the request ids stored on `allio_webhook`. */
function webhookIds(batch: readonly TaskRow[]): string[] {
  return [...new Set(batch.flatMap((t) => (t.webhook_id ? [t.webhook_id] : [])))];
}

/** Validates and maps ALLIO items; an item without an id is logged and left out, never fatal. */
function mapItems(entity: Entity, items: readonly unknown[], log?: Logger): MappedRecord[] {
  const out: MappedRecord[] = [];
  for (const item of items) {
    if (entity === 'reserve') {
      const r = allioReservationSchema.safeParse(item);
      if (r.success) out.push(mapReservation(r.data));
      else {
        log?.warn(
          { entity, issues: r.error.issues.slice(0, 3) },
          'ALLIO item left out: not a reservation',
        );
      }
    } else {
      const r = allioDealCardSchema.safeParse(item);
      if (r.success) out.push(mapDealCard(r.data));
      else {
        log?.warn(
          { entity, issues: r.error.issues.slice(0, 3) },
          'ALLIO item left out: not a deal card',
        );
      }
    }
  }
  return out;
}
