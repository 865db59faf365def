// Smart-home and WebSocket metrics. One set per registry: the api and the bridge share a registry
// when they run in one process (`npm start`).
import client, { type Registry } from 'prom-client';

function create(registry: Registry) {
  return {
    commandsPublished: new client.Counter({
      name: 'hub_smart_home_commands_published_total',
      help: 'Commands published to partners, by type and result (confirmed by the broker, or failed).',
      labelNames: ['type', 'result'] as const,
      registers: [registry],
    }),
    replies: new client.Counter({
      name: 'hub_smart_home_replies_total',
      help: 'Partner replies consumed, by type and result (applied, duplicate, unknown, late, malformed, mismatched_partner, mismatched_type, mismatched_service).',
      labelNames: ['type', 'result'] as const,
      registers: [registry],
    }),
    roundTrip: new client.Histogram({
      name: 'hub_smart_home_command_round_trip_seconds',
      help: 'From accepting an open command to its partner reply being applied, by service.',
      labelNames: ['service'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    commandReads: new client.Counter({
      name: 'hub_smart_home_command_reads_total',
      help: 'Open commands read over REST, by where the answer came from (cache: Redis; database: PostgreSQL, when the cache has no outcome or is down).',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    resultPushes: new client.Counter({
      name: 'hub_smart_home_command_result_pushes_total',
      help: "Pushes of an open command's result to its tenant, by result (published; repeated: the cache already held it, nothing sent; failed: left to the sweep).",
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    wsConnections: new client.Gauge({
      name: 'hub_websocket_connections',
      help: 'Tenant WebSockets open on this process.',
      registers: [registry],
    }),
    wsSlowConsumers: new client.Counter({
      name: 'hub_websocket_slow_consumers_closed_total',
      help: 'Tenant WebSockets closed (1013) because their unsent events passed WS_MAX_BUFFERED_BYTES.',
      registers: [registry],
    }),
    wsEvents: new client.Counter({
      name: 'hub_websocket_events_total',
      help: 'Events pushed to tenant WebSockets, by event type.',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    wsRedelivered: new client.Counter({
      name: 'hub_tenant_events_redelivered_total',
      help: "Tenant events re-delivered from PostgreSQL to this replica's sockets after its Redis subscription was lost, by event type.",
      labelNames: ['type'] as const,
      registers: [registry],
    }),
  };
}

export type SmartHomeMetrics = ReturnType<typeof create>;
const byRegistry = new WeakMap<Registry, SmartHomeMetrics>();

export function smartHomeMetrics(registry: Registry): SmartHomeMetrics {
  let m = byRegistry.get(registry);
  if (!m) byRegistry.set(registry, (m = create(registry)));
  return m;
}
