// Hourly 1C export, exactly once across replicas: every replica inserts the run rows of the
// completed hours in its look-back window with ON CONFLICT DO NOTHING (so an hour missed while no
// replica ran is caught up), one replica claims each row, and the document ledger makes a retried
// or resumed run send only what 1C does not have yet.
import type { Knex } from 'knex';
import { perRow } from '../../core/engine/per-row.js';
import { PERIODIC_RUNS } from '../../core/engine/periodic.js';
import type { WorkRow, WorkTable } from '../../core/engine/work-table.js';
import type { Logger } from '../../core/logger.js';
import type { KitchenMetrics } from './metrics.js';
import type { OneCClient } from './onec-client.js';
import {
  completedHours,
  hourDocuments,
  hourStart,
  type HourData,
  type OneCDocument,
} from './onec-documents.js';

export const ONEC_EXPORT_JOB = 'kitchen-1c-export';

export interface RunRow extends WorkRow {
  period_key: string;
}

/**
 * A transaction that started just before the hour ended stamps its rows with that hour and may
 * commit a little later; an hour is exported only once this long has passed after its end.
 * Transactions here last milliseconds; 2 minutes leaves room for a stalled pod.
 */
export const SETTLE_MS = 2 * 60_000;

/** Inserts the run rows of the completed hours in the window; returns how many were new. */
export async function scheduleHours(db: Knex, now: Date, lookBackHours: number): Promise<number> {
  const keys = completedHours(new Date(now.getTime() - SETTLE_MS), lookBackHours);
  const { rows } = await db.raw<{ rows: unknown[] }>(
    `insert into ${PERIODIC_RUNS} (name, period_key) select ?, k from unnest(?::text[]) k
     on conflict (name, period_key) do nothing returning id`,
    [ONEC_EXPORT_JOB, keys],
  );
  return rows.length;
}

async function loadHour(db: Knex, key: string): Promise<HourData> {
  const from = hourStart(key);
  const to = new Date(from.getTime() + 3_600_000);
  const orders = await db('kitchen_orders')
    .where('produced_at', '>=', from)
    .andWhere('produced_at', '<', to)
    .orderBy('produced_at');
  const payments = await db('kitchen_payments')
    .where({ outcome: 'approved' })
    .andWhere('settled_at', '>=', from)
    .andWhere('settled_at', '<', to)
    .orderBy('settled_at');
  const refunds = await db('kitchen_refunds')
    .where({ outcome: 'refunded' })
    .andWhere('refunded_at', '>=', from)
    .andWhere('refunded_at', '<', to)
    .orderBy('refunded_at');
  const offs = await db('kitchen_write_offs')
    .where('written_off_at', '>=', from)
    .andWhere('written_off_at', '<', to)
    .orderBy(['order_id', 'ingredient']);
  const byOrder = new Map<string, HourData['writeOffs'][number]>();
  for (const w of offs as {
    order_id: string;
    ingredient: string;
    quantity: string;
    unit: string;
    written_off_at: Date;
  }[]) {
    const entry = byOrder.get(w.order_id) ?? {
      orderId: w.order_id,
      at: w.written_off_at,
      lines: [],
    };
    entry.lines.push({ ingredient: w.ingredient, quantity: Number(w.quantity), unit: w.unit });
    byOrder.set(w.order_id, entry);
  }
  return {
    orders: orders.map(
      (o: {
        id: string;
        produced_at: Date;
        total_minor: string;
        currency: string;
        items: HourData['orders'][number]['items'];
      }) => ({
        id: o.id,
        producedAt: o.produced_at,
        totalMinor: Number(o.total_minor),
        currency: o.currency,
        items: o.items,
      }),
    ),
    payments: payments.map(
      (p: {
        id: string;
        order_id: string;
        settled_at: Date;
        amount_minor: string;
        currency: string;
        gateway_payment_id: string;
      }) => ({
        id: String(p.id),
        orderId: p.order_id,
        settledAt: p.settled_at,
        amountMinor: Number(p.amount_minor),
        currency: p.currency,
        gatewayPaymentId: p.gateway_payment_id,
      }),
    ),
    refunds: refunds.map(
      (r: {
        order_id: string;
        refunded_at: Date;
        amount_minor: string;
        currency: string;
        gateway_payment_id: string;
        gateway_refund_id: string;
      }) => ({
        orderId: r.order_id,
        refundedAt: r.refunded_at,
        amountMinor: Number(r.amount_minor),
        currency: r.currency,
        gatewayPaymentId: r.gateway_payment_id,
        gatewayRefundId: r.gateway_refund_id,
      }),
    ),
    writeOffs: [...byOrder.values()],
  };
}

type Sent = 'sent' | 'already_there' | 'skipped';

/**
 * Sends one document unless the ledger or 1C already has it. The ledger entry is written first, on
 * its own ('sending': an attempt may reach 1C from here on), then locked while 1C is called, so
 * that one sender at a time handles a document: runs of two hours on two replicas share catalog
 * entries (the retail buyer, a dish sold in both), and the second waits, then finds it sent.
 */
async function exportDocument(
  db: Knex,
  client: OneCClient,
  period: string,
  doc: OneCDocument,
  signal: AbortSignal,
): Promise<Sent> {
  const key = { doc_type: doc.docType, source_id: doc.sourceId };
  const created = await db('kitchen_onec_documents')
    .insert({ period_key: period, ...key, ref_key: doc.refKey, state: 'sending' })
    .onConflict(['doc_type', 'source_id'])
    .ignore()
    .returning('id');
  return db.transaction(async (trx) => {
    // A holder cut off from PostgreSQL mid-call would keep the lock until TCP gave up: the server
    // ends the transaction once it has waited past both calls' timeouts.
    await trx.raw(
      `set local idle_in_transaction_session_timeout = ${2 * client.timeoutMs + 5_000}`,
    );
    const entry = await trx('kitchen_onec_documents')
      .where(key)
      .forUpdate()
      .first<{ state: string }>();
    if (entry?.state === 'sent') return 'skipped';
    // An entry this call did not write may be an earlier attempt's that reached 1C: ask first.
    const there =
      created.length === 0 ? await client.exists(doc.docType, doc.refKey, signal) : false;
    if (!there) await client.create(doc.docType, doc.body, signal);
    await trx('kitchen_onec_documents').where(key).update({ state: 'sent', sent_at: trx.fn.now() });
    return there ? 'already_there' : 'sent';
  });
}

export function exportHandler(d: {
  db: Knex;
  table: WorkTable;
  client: OneCClient;
  logger: Logger;
  metrics: KitchenMetrics;
}) {
  const log = d.logger.child({ reconciler: d.table.reconciler });
  // The documents of each run's hour by result so far, for the log line of an interrupted run.
  const progress = new WeakMap<RunRow, Record<Sent, number>>();
  return perRow<RunRow>(d.table, d.logger, {
    warning: '1C export of the hour interrupted; it resumes where it stopped',
    describe: (run) => ({ hour: run.period_key, ...progress.get(run) }),
    async handle(run, owner, signal) {
      const counts: Record<Sent, number> = { sent: 0, already_there: 0, skipped: 0 };
      progress.set(run, counts);
      const docs = hourDocuments(await loadHour(d.db, run.period_key));
      for (const doc of docs) {
        const r = await exportDocument(d.db, d.client, run.period_key, doc, signal);
        counts[r]++;
        if (r !== 'skipped') d.metrics.onecDocuments.inc({ doc_type: doc.docType, result: r });
      }
      await d.table.complete([run.id], owner, d.db, {
        result: JSON.stringify({ documents: docs.length, ...counts }),
        finished_at: d.db.fn.now(),
      });
      if (docs.length > 0) {
        log.info({ hour: run.period_key, ...counts }, '1C export of the hour done');
      }
    },
  });
}
