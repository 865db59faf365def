// The webhook ingress's durable writes, batched by group commit (core/group-commit.ts): concurrent
// ALLIO webhooks and warehouse deliveries each share one multi-row INSERT and one commit, and every
// request is answered 200 only after the statement that carried its row committed. The tables'
// NOTIFY triggers are FOR EACH STATEMENT, so one batch wakes the workers once.
import type { Knex } from 'knex';
import { isDatabaseUnavailable } from '../core/errors.js';
import { ApiError } from '../core/http.js';
import {
  firstOfEachKey,
  GroupCommit,
  GroupCommitFullError,
  type BatchWriter,
  type GroupCommitOptions,
} from '../core/group-commit.js';
import type { Metrics } from '../core/metrics.js';
import { intakeEnv, type IntakeConfig } from './config.js';

export type { IntakeConfig };

export const intakeDefaults: IntakeConfig = intakeEnv.parse({});

function groupCommitOptions(c: IntakeConfig): GroupCommitOptions {
  return {
    maxBatch: c.INTAKE_BATCH_MAX,
    maxInFlight: c.INTAKE_WRITES_IN_FLIGHT,
    maxQueued: c.INTAKE_QUEUE_MAX,
  };
}

interface AllioWebhookRow {
  integration_uuid: string;
  integration_id: string;
  command: string;
  /** The ids as JSON text, e.g. "[111,222]". */
  external_ids_array: string;
  request_id: string;
}

/**
 * One INSERT for the batch; answers each row's id. The rows are passed as one JSON parameter (no
 * parameter-count limit) and inserted in their order: the ORDER BY keeps the subquery a sorted
 * scan below the insert's own projection, where the id default (nextval) is evaluated, so ids
 * ascend with the rows' order and the sorted returned ids map back one to one.
 */
export const writeAllioWebhooks =
  (db: Knex): BatchWriter<AllioWebhookRow, number> =>
  async (rows) => {
    const { rows: inserted } = await db.raw<{ rows: { id: string }[] }>(
      `insert into allio_webhook (integration_uuid, integration_id, command, external_ids_array, request_id)
     select x.integration_uuid, x.integration_id, x.command, x.external_ids_array, x.request_id
       from jsonb_to_recordset(?::jsonb) as x(i int, integration_uuid uuid, integration_id bigint, command text, external_ids_array text, request_id text)
      order by x.i
     returning id`,
      [JSON.stringify(rows.map((r, i) => ({ i, ...r })))],
    );
    return inserted.map((r) => Number(r.id)).sort((a, b) => a - b);
  };

interface WarehouseEventRow {
  webhook_id: string;
  type: string;
  payload: unknown;
  /** ISO 8601. */
  occurred_at: string;
}

type WarehouseOutcome = 'accepted' | 'duplicate';

/**
 * One INSERT … ON CONFLICT DO NOTHING for the batch: a webhook-id stored before, or twice in the
 * batch, is a duplicate (the first of the batch is stored), as if the deliveries had come one by one.
 */
export const writeWarehouseEvents =
  (db: Knex): BatchWriter<WarehouseEventRow, WarehouseOutcome> =>
  async (rows) => {
    const first = firstOfEachKey(rows, (r) => r.webhook_id);
    const unique = rows.filter((_, i) => first[i]);
    const { rows: inserted } = await db.raw<{ rows: { webhook_id: string }[] }>(
      `insert into kitchen_warehouse_events (webhook_id, type, payload, occurred_at)
     select x.webhook_id, x.type, x.payload, x.occurred_at
       from jsonb_to_recordset(?::jsonb) as x(webhook_id text, type text, payload jsonb, occurred_at timestamptz)
     on conflict (webhook_id) do nothing
     returning webhook_id`,
      [JSON.stringify(unique)],
    );
    const stored = new Set(inserted.map((r) => r.webhook_id));
    return rows.map((r, i) => (first[i] && stored.has(r.webhook_id) ? 'accepted' : 'duplicate'));
  };

/** A webhook route's durable write: resolves once the row's batch committed. */
interface IntakeCommitter<Row, Result> {
  /** Rejects with the 503 `intake_busy` ApiError (counted) when the write queue is full. */
  submit(row: Row): Promise<Result>;
}

/** A group commit over `write`, with its batches counted under `source`. */
export function intakeCommitter<Row, Result>(
  write: BatchWriter<Row, Result>,
  config: IntakeConfig,
  metrics: Metrics,
  source: 'allio' | 'warehouse',
): IntakeCommitter<Row, Result> {
  const commit = new GroupCommit(write, groupCommitOptions(config), {
    isBatchWide: isDatabaseUnavailable,
    onBatch: (rows) => metrics.webhookBatchRows.observe({ source }, rows),
  });
  return {
    submit: (row) =>
      commit.submit(row).catch((thrown: unknown) => {
        throw thrown instanceof GroupCommitFullError ? intakeBusy(source, metrics) : thrown;
      }),
  };
}

/** Seconds a caller is asked to wait when the write queue is full. */
const INTAKE_BUSY_RETRY_AFTER_SECONDS = 1;

/** The 503 for a full write queue: the database is behind, and a retry a second later is cheap. */
function intakeBusy(source: 'allio' | 'warehouse', metrics: Metrics): ApiError {
  metrics.webhooks.inc({ source, result: 'intake_busy' });
  return new ApiError(
    503,
    'intake_busy',
    `Webhooks are arriving faster than they can be stored; retry after ${INTAKE_BUSY_RETRY_AFTER_SECONDS} s.`,
    undefined,
    { 'retry-after': String(INTAKE_BUSY_RETRY_AFTER_SECONDS) },
  );
}
