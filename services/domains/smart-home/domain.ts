// The smart-home subscription state machine as data: what a tenant may do in each state, and where
// a request's outcome leaves the subscription. Pure, no I/O.
import { SERVICES, type Service } from '../../contracts/smart-home-messages.js';

export { SERVICES, type Service };

/** What the app shows. `failed` means the connection failed; a failed disconnect stays `connected`. */
export const SUBSCRIPTION_STATES = ['connecting', 'connected', 'disconnecting', 'disconnected', 'failed'] as const;
export type SubscriptionState = (typeof SUBSCRIPTION_STATES)[number];

/** A connect or disconnect request (seed: ready_for_request -> requested -> complete, or failed). */
export type RequestKind = 'connect' | 'disconnect';
export const REQUEST_STATES = ['ready_for_request', 'requested', 'complete', 'failed'] as const;
export type RequestState = (typeof REQUEST_STATES)[number];

export type TenantAction = 'connect' | 'disconnect' | 'open';

/**
 * Why a request or an open command failed, as tenants see it: a stable code, never the partner's
 * free-text reason nor the hub's error text (both may name internal hosts or carry markup; they
 * stay in the database, the command cache and the logs for operators). `partner_refused`: the
 * partner answered `failure` (also the open command's, commandResultEvent in command-state.ts);
 * `partner_unavailable`: the partner did not answer in time or could not be reached.
 */
export const FAILURE_CODES = ['partner_refused', 'partner_unavailable'] as const;
export type FailureCode = (typeof FAILURE_CODES)[number];

/** Why an action is refused: a stable code and a sentence for the app. */
export interface Refusal {
  code: 'already_connected' | 'request_in_progress' | 'not_connected';
  message: string;
}

type Decision = { allowed: true; next?: SubscriptionState } | { allowed: false; refusal: Refusal };

const inProgress: Decision = {
  allowed: false,
  refusal: { code: 'request_in_progress', message: 'A request for this service is still in progress; wait for its result.' },
};
const notConnected: Decision = {
  allowed: false,
  refusal: { code: 'not_connected', message: 'This service is not connected for the tenant; connect it first.' },
};
const alreadyConnected: Decision = {
  allowed: false,
  refusal: { code: 'already_connected', message: 'This service is already connected.' },
};

/** Tenant actions by subscription state; `none` is a tenant who never asked for the service. */
const TENANT_ACTIONS: Record<SubscriptionState | 'none', Record<TenantAction, Decision>> = {
  none: { connect: { allowed: true, next: 'connecting' }, disconnect: notConnected, open: notConnected },
  connecting: { connect: inProgress, disconnect: inProgress, open: notConnected },
  connected: { connect: alreadyConnected, disconnect: { allowed: true, next: 'disconnecting' }, open: { allowed: true } },
  disconnecting: { connect: inProgress, disconnect: inProgress, open: inProgress },
  disconnected: { connect: { allowed: true, next: 'connecting' }, disconnect: notConnected, open: notConnected },
  failed: { connect: { allowed: true, next: 'connecting' }, disconnect: notConnected, open: notConnected },
};

export function decideTenantAction(state: SubscriptionState | undefined, action: TenantAction): Decision {
  return TENANT_ACTIONS[state ?? 'none'][action];
}

/** Where a finished request leaves the subscription. */
const OUTCOMES: Record<RequestKind, Record<'complete' | 'failed', SubscriptionState>> = {
  connect: { complete: 'connected', failed: 'failed' },
  disconnect: { complete: 'disconnected', failed: 'connected' },
};

export function subscriptionAfter(kind: RequestKind, outcome: 'complete' | 'failed'): SubscriptionState {
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
export function replyDeadlineMs(attempt: number, replyTimeoutMs: number, factor = 2, maxMs = 15 * 60_000): number {
  return Math.min(maxMs, replyTimeoutMs * factor ** Math.max(0, attempt - 1));
}
