// Where the smart-home tenant events are recorded, for the WebSocket to re-deliver after its Redis
// subscription was lost: open command results (smart_home_commands) and subscription changes
// (smart_home_subscriptions, each row's latest state).
import type { Knex } from 'knex';
import {
  buildSubscriptionChanged,
  type CommandResultEvent,
  type SubscriptionChangedEvent,
} from '../../contracts/tenant-events.js';
import type { TenantEventSource } from '../../core/tenant-event-catch-up.js';
import { commandResultEvent } from '../../domains/smart-home/command-state.js';
import type { CommandStore } from '../../domains/smart-home/command-store.js';
import { subscriptionsChangedSince } from '../../domains/smart-home/requests.js';

export function commandResultSource(store: CommandStore): TenantEventSource<CommandResultEvent> {
  return {
    type: 'command.result',
    recent: async (tenants, lookbackMs, limit) =>
      (await store.endedSince(tenants, lookbackMs, limit)).map((c) => ({
        tenantId: c.tenantId,
        event: commandResultEvent(c),
      })),
  };
}

/** A subscription changed several times while the subscription was away re-delivers its latest state only. */
export function subscriptionChangeSource(db: Knex): TenantEventSource<SubscriptionChangedEvent> {
  return {
    type: 'subscription.changed',
    recent: async (tenants, lookbackMs, limit) =>
      (await subscriptionsChangedSince(db, tenants, lookbackMs, limit)).map((s) => ({
        tenantId: s.tenantId,
        event: buildSubscriptionChanged(s.subscription),
      })),
  };
}
