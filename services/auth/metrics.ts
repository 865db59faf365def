// Token endpoint metrics, registered on the process registry.
import client, { type Registry } from 'prom-client';

export function authMetrics(registry: Registry) {
  const name = 'hub_auth_token_requests_total';
  const existing = registry.getSingleMetric(name) as
    client.Counter<'client_id' | 'outcome'> | undefined;
  return {
    tokenRequests:
      existing ??
      new client.Counter({
        name,
        help: 'Token requests at the authorization server, by client (unregistered ids grouped) and outcome (issued, unknown_client, bad_secret, disabled_client, invalid_request, invalid_scope, server_error).',
        labelNames: ['client_id', 'outcome'] as const,
        registers: [registry],
      }),
  };
}
