// The operator's metrics: reconciles by kind and result, and whether this replica leads.
import client, { type Registry } from 'prom-client';

function create(registry: Registry) {
  return {
    reconciles: new client.Counter({
      name: 'hub_operator_reconciles_total',
      help: 'Custom resources reconciled, by kind and result (applied, invalid, deleted, failed, skipped).',
      labelNames: ['kind', 'result'] as const,
      registers: [registry],
    }),
    leader: new client.Gauge({
      name: 'hub_operator_leader',
      help: '1 on the replica that holds the operator Lease and reconciles, 0 on standbys.',
      registers: [registry],
    }),
  };
}

export type OperatorMetrics = ReturnType<typeof create>;
const byRegistry = new WeakMap<Registry, OperatorMetrics>();

export function operatorMetrics(registry: Registry): OperatorMetrics {
  let m = byRegistry.get(registry);
  if (!m) byRegistry.set(registry, (m = create(registry)));
  return m;
}
