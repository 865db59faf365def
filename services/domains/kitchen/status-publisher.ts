// Outbox publisher: status changes committed with their order are published to RabbitMQ as Protobuf
// with publisher confirms; a row is done only after the broker confirmed it, so an event is never
// lost (and, rarely, delivered twice or after a newer one: consumers drop what is not newer than the
// order's version they last delivered). Published rows are read back for the tenant WebSocket's
// re-delivery after a lost Redis subscription (publishedSince).
import type { ChannelWrapper } from 'amqp-connection-manager';
import type { Knex } from 'knex';
import { Status, type WorkRow, type WorkTable } from '../../core/engine/work-table.js';
import type { KitchenMetrics } from './metrics.js';
import type { OrderState } from './order-state.js';
import {
  CONTENT_TYPE,
  encodeStatus,
  STATUS_EXCHANGE,
  type OrderStatusEvent,
} from './status-events.js';

export interface OutboxRow extends WorkRow {
  event_id: string;
  order_id: string;
  tenant_id: string;
  state: OrderState;
  reason: string | null;
  occurred_at: Date;
  /** The order's version after the change (bigint, read as a string). */
  version: string;
  production_status: string | null;
}

/** The status event a row carries. */
function statusEventOf(r: OutboxRow): OrderStatusEvent {
  return {
    eventId: r.event_id,
    orderId: r.order_id,
    tenantId: r.tenant_id,
    state: r.state,
    reason: r.reason ?? '',
    occurredAtMs: r.occurred_at.getTime(),
    version: Number(r.version),
    productionStatus: r.production_status ?? '',
  };
}

/**
 * The latest published event of each order of `tenants` that published one in the last
 * `lookbackMs`, the `limit` published last, in the order they were published: what the tenant
 * WebSocket re-delivers after its Redis subscription was lost (the latest state is all a client
 * keeps). One scan of kitchen_outbox_tenant_published.
 */
export async function publishedSince(
  db: Knex,
  tenants: readonly string[],
  lookbackMs: number,
  limit: number,
): Promise<OrderStatusEvent[]> {
  if (tenants.length === 0) return [];
  const latest = db('kitchen_outbox')
    .distinctOn('order_id')
    .whereIn('tenant_id', tenants)
    .where('status', Status.DONE)
    .where(
      'finished_at',
      '>=',
      db.raw(`now() - make_interval(secs => ?::double precision / 1000)`, [lookbackMs]),
    )
    .orderBy([
      { column: 'order_id' },
      { column: 'version', order: 'desc' },
      { column: 'id', order: 'desc' },
    ]);
  const rows: OutboxRow[] = await db
    .select('*')
    .from(latest.as('latest'))
    .orderBy('finished_at', 'desc')
    .limit(limit);
  return rows.reverse().map(statusEventOf);
}

export function outboxHandler(d: {
  db: Knex;
  table: WorkTable;
  channel: ChannelWrapper;
  /** The installation's (`statusRoute(HUB_INSTALLATION).routingKey`). */
  routingKey: string;
  metrics: KitchenMetrics;
}) {
  return async (batch: OutboxRow[], owner: string): Promise<void> => {
    try {
      await Promise.all(
        batch.map((r) =>
          d.channel.publish(STATUS_EXCHANGE, d.routingKey, encodeStatus(statusEventOf(r)), {
            persistent: true,
            messageId: r.event_id,
            contentType: CONTENT_TYPE,
            timestamp: Math.floor(r.occurred_at.getTime() / 1000),
          }),
        ),
      );
      await d.table.complete(
        batch.map((r) => r.id),
        owner,
        d.db,
        { finished_at: d.db.fn.now() },
      );
      d.metrics.statusEvents.inc({ result: 'published' }, batch.length);
    } catch (thrown) {
      await d.table.settleError(batch, owner, thrown);
    }
  };
}
