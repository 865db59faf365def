// Kitchen metrics, registered on the process registry next to the engine's.
import client, { type Registry } from 'prom-client';

export function createKitchenMetrics(registry: Registry) {
  const get = <T>(name: string, make: () => T): T =>
    (registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    payments: get(
      'hub_kitchen_payments_total',
      () =>
        new client.Counter({
          name: 'hub_kitchen_payments_total',
          help: 'Payments settled, by outcome (approved, declined, failed).',
          labelNames: ['outcome'] as const,
          registers: [registry],
        }),
    ),
    productions: get(
      'hub_kitchen_productions_total',
      () =>
        new client.Counter({
          name: 'hub_kitchen_productions_total',
          help: 'Production orders finished, by outcome (produced, failed).',
          labelNames: ['outcome'] as const,
          registers: [registry],
        }),
    ),
    refunds: get('hub_kitchen_refunds_total', () => {
      const c = new client.Counter({
        name: 'hub_kitchen_refunds_total',
        help: 'Refunds of charged orders that failed, by outcome (refunded, refused by the gateway, failed after every attempt, not_charged: the gateway had no charge).',
        labelNames: ['outcome'] as const,
        registers: [registry],
      });
      // Every outcome exported from 0, so the first refused refund is an increase the alert sees.
      for (const outcome of ['refunded', 'refused', 'failed', 'not_charged']) c.inc({ outcome }, 0);
      return c;
    }),
    onecDocuments: get(
      'hub_kitchen_onec_documents_total',
      () =>
        new client.Counter({
          name: 'hub_kitchen_onec_documents_total',
          help: 'Documents sent to 1C, by document type and result (sent, already_there).',
          labelNames: ['doc_type', 'result'] as const,
          registers: [registry],
        }),
    ),
    statusEvents: get(
      'hub_kitchen_status_events_total',
      () =>
        new client.Counter({
          name: 'hub_kitchen_status_events_total',
          help: 'Order status events, by result (published; delivered, duplicate or stale at the consumer; dead_lettered).',
          labelNames: ['result'] as const,
          registers: [registry],
        }),
    ),
    warehouseEvents: get(
      'hub_kitchen_warehouse_events_total',
      () =>
        new client.Counter({
          name: 'hub_kitchen_warehouse_events_total',
          help: 'Warehouse events applied to the stock, by type.',
          labelNames: ['type'] as const,
          registers: [registry],
        }),
    ),
  };
}
export type KitchenMetrics = ReturnType<typeof createKitchenMetrics>;
