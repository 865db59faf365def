// The smart-home subscription state machine as data: what a tenant may do in each state, and where
// a request's outcome leaves the subscription. Pure, no I/O.
import { SERVICES, type Service } from '../../contracts/smart-home-messages.js';
import type { RequestKind, SubscriptionState } from '../../contracts/tenant-events.js';

export { SERVICES, type Service };

// The states, kinds and failure codes tenants see are part of the tenant event contract.
export {
  FAILURE_CODES,
  REQUEST_STATES,
  SUBSCRIPTION_STATES,
  type FailureCode,
  type RequestState,
} from '../../contracts/tenant-events.js';
export type { RequestKind, SubscriptionState };
// A request's state is never written: PostgreSQL computes `smart_home_requests.state` from the
// engine's status and `requested_at` (migration 15), so it follows every claim, retry and failure.

export type TenantAction = 'connect' | 'disconnect' | 'open';

/** Why an action is refused: a stable code and a sentence for the app. */
export interface Refusal {
  code: 'already_connected' | 'request_in_progress' | 'not_connected';
  message: string;
}

type Decision = { allowed: true; next?: SubscriptionState } | { allowed: false; refusal: Refusal };

const inProgress: Decision = {
  allowed: false,
  refusal: {
    code: 'request_in_progress',
    message: 'A request for this service is still in progress; wait for its result.',
  },
};
const notConnected: Decision = {
  allowed: false,
  refusal: {
    code: 'not_connected',
    message: 'This service is not connected for the tenant; connect it first.',
  },
};
const alreadyConnected: Decision = {
  allowed: false,
  refusal: { code: 'already_connected', message: 'This service is already connected.' },
};

/** Tenant actions by subscription state; `none` is a tenant who never asked for the service. */
const TENANT_ACTIONS: Record<SubscriptionState | 'none', Record<TenantAction, Decision>> = {
  none: {
    connect: { allowed: true, next: 'connecting' },
    disconnect: notConnected,
    open: notConnected,
  },
  connecting: { connect: inProgress, disconnect: inProgress, open: notConnected },
  connected: {
    connect: alreadyConnected,
    disconnect: { allowed: true, next: 'disconnecting' },
    open: { allowed: true },
  },
  disconnecting: { connect: inProgress, disconnect: inProgress, open: inProgress },
  disconnected: {
    connect: { allowed: true, next: 'connecting' },
    disconnect: notConnected,
    open: notConnected,
  },
  failed: {
    connect: { allowed: true, next: 'connecting' },
    disconnect: notConnected,
    open: notConnected,
  },
};

export function decideTenantAction(
  state: SubscriptionState | undefined,
  action: TenantAction,
): Decision {
  return TENANT_ACTIONS[state ?? 'none'][action];
}

/** Where a finished request leaves the subscription. */
const OUTCOMES: Record<RequestKind, Record<'complete' | 'failed', SubscriptionState>> = {
  connect: { complete: 'connected', failed: 'failed' },
  disconnect: { complete: 'disconnected', failed: 'connected' },
};

export function subscriptionAfter(
  kind: RequestKind,
  outcome: 'complete' | 'failed',
): SubscriptionState {
  return OUTCOMES[kind][outcome];
}

/** The subscription state while a request of `kind` is in flight. */
export function subscriptionDuring(kind: RequestKind): SubscriptionState {
  return kind === 'connect' ? 'connecting' : 'disconnecting';
}

/** Personal data leave the hub once the tenant is disconnected (seed: data only for the service). */
export function erasesPersonalData(kind: RequestKind, outcome: 'complete' | 'failed'): boolean {
  return kind === 'disconnect' && outcome === 'complete';
}

/**
 * When to re-send a request nobody answered: the reply timeout grows by `factor` per attempt
 * (seed: the Retry pattern). `attempt` is the number of sends so far (1 after the first).
 */
export function replyDeadlineMs(
  attempt: number,
  replyTimeoutMs: number,
  factor = 2,
  maxMs = 15 * 60_000,
): number {
  return Math.min(maxMs, replyTimeoutMs * factor ** Math.max(0, attempt - 1));
}
