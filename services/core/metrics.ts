// Prometheus metrics shared by every service. Each process (and each test) owns a Registry, so
// nothing leaks between instances; names follow Prometheus conventions (units, _total).
import client, { Registry } from 'prom-client';

export { Registry };

export function createMetrics(registry: Registry = new Registry()) {
  const m = {
    registry,
    reconcileAttempts: new client.Counter({
      name: 'hub_reconcile_attempts_total',
      help: 'Work items handled by a reconciler, by outcome (done, sent, retry, failed, skipped, released).',
      labelNames: ['reconciler', 'outcome'] as const,
      registers: [registry],
    }),
    reconcileRetries: new client.Counter({
      name: 'hub_reconcile_retries_total',
      help: 'Retries scheduled by a reconciler, by reason (timeout, http_429, http_5xx, connection, database, unknown).',
      labelNames: ['reconciler', 'reason'] as const,
      registers: [registry],
    }),
    reconcileDuration: new client.Histogram({
      name: 'hub_reconcile_duration_seconds',
      help: 'Time to handle one claimed batch, by reconciler.',
      labelNames: ['reconciler'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    reconcileClaimErrors: new client.Counter({
      name: 'hub_reconcile_claim_errors_total',
      help: 'Failed attempts to claim work (usually the database being unreachable).',
      labelNames: ['reconciler'] as const,
      registers: [registry],
    }),
    backlog: new client.Gauge({
      name: 'hub_reconcile_backlog',
      help: 'Work items due now and not finished, by reconciler; what the workers autoscale on.',
      labelNames: ['reconciler'] as const,
      registers: [registry],
    }),
    oldestDueAge: new client.Gauge({
      name: 'hub_reconcile_oldest_due_age_seconds',
      help: 'Age of the oldest work item that is due and not finished, by reconciler.',
      labelNames: ['reconciler'] as const,
      registers: [registry],
    }),
    retrying: new client.Gauge({
      name: 'hub_reconcile_retrying',
      help: 'Work items waiting for a retry after a failed attempt, by reconciler (a partner down keeps them here).',
      labelNames: ['reconciler'] as const,
      registers: [registry],
    }),
    leaseLost: new client.Counter({
      name: 'hub_lease_lost_total',
      help: 'Work items whose lease lapsed or passed to another worker while this one held them (its result was not written).',
      labelNames: ['reconciler'] as const,
      registers: [registry],
    }),
    rateLimitWait: new client.Histogram({
      name: 'hub_ratelimit_wait_seconds',
      help: 'Time a call waited for a slot of the shared rate limiter, by provider.',
      labelNames: ['provider'] as const,
      buckets: [0, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers: [registry],
    }),
    rateLimitLateGrants: new client.Counter({
      name: 'hub_ratelimit_late_grants_total',
      help: 'Rate limiter slots given up because the caller reached its send after the slot deadline (a paused or starved process); it asked again.',
      labelNames: ['provider'] as const,
      registers: [registry],
    }),
    rateLimitErrors: new client.Counter({
      name: 'hub_ratelimit_errors_total',
      help: 'Rate limiter calls that failed because Redis was unreachable (the call waited, it was not let through).',
      labelNames: ['provider'] as const,
      registers: [registry],
    }),
    webhookLimitUnchecked: new client.Counter({
      name: 'hub_webhook_limit_unchecked_total',
      help: 'Webhooks accepted without their intake limits checked, because Redis did not answer in time (intake fails open).',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    webhooks: new client.Counter({
      name: 'hub_webhooks_received_total',
      help: 'Inbound webhooks by source and result (accepted or the rejection code).',
      labelNames: ['source', 'result'] as const,
      registers: [registry],
    }),
    webhookBatchRows: new client.Histogram({
      name: 'hub_webhook_batch_rows',
      help: 'Webhooks stored by one INSERT and commit (group commit), by source.',
      labelNames: ['source'] as const,
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
      registers: [registry],
    }),
    httpDuration: new client.Histogram({
      name: 'hub_http_request_duration_seconds',
      help: 'HTTP requests served, by route and status code.',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    httpConnectionsRefused: new client.Counter({
      name: 'hub_http_connections_refused_total',
      help: 'Connections dropped at accept because the process held HTTP_MAX_CONNECTIONS already.',
      registers: [registry],
    }),
    partnerRequests: new client.Histogram({
      name: 'hub_partner_request_duration_seconds',
      help: 'Outbound calls to partners, by partner, operation and result.',
      labelNames: ['partner', 'operation', 'result'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    retryAfterClamped: new client.Counter({
      name: 'hub_retry_after_clamped_total',
      help: 'Retry-After answers that asked for a longer pause than RETRY_AFTER_MAX_MS and were clamped, by partner.',
      labelNames: ['partner'] as const,
      registers: [registry],
    }),
    outboundRefused: new client.Counter({
      name: 'hub_outbound_refused_total',
      help: 'Outbound calls refused by the outbound policy, by partner and reason (scheme, host, redirect, response_too_large).',
      labelNames: ['partner', 'reason'] as const,
      registers: [registry],
    }),
    allioRecords: new client.Counter({
      name: 'hub_allio_records_synced_total',
      help: 'ALLIO records written to the CRM, by entity.',
      labelNames: ['entity'] as const,
      registers: [registry],
    }),
    allioRecordsMissing: new client.Counter({
      name: 'hub_allio_records_missing_total',
      help: 'Ids asked of ALLIO that it did not return (deleted or unknown), by entity.',
      labelNames: ['entity'] as const,
      registers: [registry],
    }),
    allioInvalidPhones: new client.Counter({
      name: 'hub_allio_invalid_phones_total',
      help: 'Contacts whose phone from ALLIO was not a phone number (stored as null, raw value kept).',
      registers: [registry],
    }),
    allioDeleted: new client.Counter({
      name: 'hub_allio_entities_deleted_total',
      help: 'CRM entities soft-deleted by the daily deletion sweep, by entity.',
      labelNames: ['entity'] as const,
      registers: [registry],
    }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Process metrics (CPU, memory, event loop lag) on the process registry. */
export function collectProcessMetrics(registry: Registry): void {
  client.collectDefaultMetrics({ register: registry });
}
