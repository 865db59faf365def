// Order status for the tenant WebSocket to re-deliver after its Redis subscription was lost: the
// latest published event of each order (kitchen_outbox), as the same tenant event the status
// consumer pushes, so `eventId` (and `orderId` with `version`) identify it.
import type { Knex } from 'knex';
import { buildOrderStatus, type OrderStatusTenantEvent } from '../../contracts/tenant-events.js';
import type { TenantEventSource } from '../../core/tenant-event-catch-up.js';
import { publishedSince } from '../../domains/kitchen/status-publisher.js';

export function orderStatusSource(db: Knex): TenantEventSource<OrderStatusTenantEvent> {
  return {
    type: 'order.status',
    recent: async (tenants, lookbackMs, limit) =>
      (await publishedSince(db, tenants, lookbackMs, limit)).map((e) => ({
        tenantId: e.tenantId,
        event: buildOrderStatus(e),
      })),
  };
}
