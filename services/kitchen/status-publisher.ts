// Outbox publisher: status changes committed with their order are published to RabbitMQ as Protobuf
// with publisher confirms; a row is done only after the broker confirmed it, so an event is never
// lost (and, rarely, delivered twice or after a newer one: consumers drop what is not newer than the
// order's version they last delivered).
import type { ChannelWrapper } from 'amqp-connection-manager';
import type { Knex } from 'knex';
import type { WorkRow, WorkTable } from '../core/engine/work-table.js';
import type { KitchenMetrics } from './metrics.js';
import type { OrderState } from './order-state.js';
import { CONTENT_TYPE, encodeStatus, STATUS_EXCHANGE, STATUS_ROUTING_KEY } from './status-events.js';

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

export function outboxHandler(d: { db: Knex; table: WorkTable; channel: ChannelWrapper; metrics: KitchenMetrics }) {
  return async (batch: OutboxRow[], owner: string): Promise<void> => {
    try {
      await Promise.all(batch.map((r) =>
        d.channel.publish(STATUS_EXCHANGE, STATUS_ROUTING_KEY, encodeStatus({
          eventId: r.event_id, orderId: r.order_id, tenantId: r.tenant_id, state: r.state,
          reason: r.reason ?? '', occurredAtMs: r.occurred_at.getTime(), version: Number(r.version),
          productionStatus: r.production_status ?? '',
        }), { persistent: true, messageId: r.event_id, contentType: CONTENT_TYPE, timestamp: Math.floor(r.occurred_at.getTime() / 1000) }),
      ));
      await d.table.complete(batch.map((r) => r.id), owner, d.db, { finished_at: d.db.fn.now() });
      d.metrics.statusEvents.inc({ result: 'published' }, batch.length);
    } catch (thrown) {
      await d.table.settleError(batch, owner, thrown);
    }
  };
}
