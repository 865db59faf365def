// The tenant event contract: every JSON event the tenant WebSocket (`GET /v1/events`, docs/openapi.yaml)
// sends, as one union discriminated by `type`, with a builder per type. Every producer builds its
// event here: the api's `ready`, the smart-home `subscription.changed` and `command.result` (whose
// JSON the command-result Lua script publishes as given), and the kitchen `order.status` (whose JSON
// the order-status-deliver Lua script publishes as given). The api validates what arrives on a
// tenant's Redis channel against the union before it reaches a socket.
import { z } from 'zod';
import { SERVICES, type Service } from './smart-home-messages.js';

/** What the app shows of a smart-home subscription. `failed`: the connection failed (a failed disconnect stays `connected`). */
export const SUBSCRIPTION_STATES = [
  'connecting',
  'connected',
  'disconnecting',
  'disconnected',
  'failed',
] as const;
export type SubscriptionState = (typeof SUBSCRIPTION_STATES)[number];

export const REQUEST_KINDS = ['connect', 'disconnect'] as const;
export type RequestKind = (typeof REQUEST_KINDS)[number];
/** A connect or disconnect request: ready_for_request -> requested -> complete, or failed. */
export const REQUEST_STATES = ['ready_for_request', 'requested', 'complete', 'failed'] as const;
export type RequestState = (typeof REQUEST_STATES)[number];

/**
 * Why a request or an open command failed, as tenants see it: a stable code, never the partner's
 * free-text reason nor the hub's error text (both may name internal hosts or carry markup; they
 * stay in the database, the command cache and the logs for operators). `partner_refused`: the
 * partner answered `failure` (to a request or an open command); `partner_unavailable`: the partner
 * did not answer in time or could not be reached.
 */
export const FAILURE_CODES = ['partner_refused', 'partner_unavailable'] as const;
export type FailureCode = (typeof FAILURE_CODES)[number];

/** How an open command ended. */
export const COMMAND_OUTCOMES = ['opened', 'failed', 'timeout'] as const;
export type CommandOutcome = (typeof COMMAND_OUTCOMES)[number];

export const ORDER_STATES = [
  'awaiting_payment',
  'payment_pending',
  'payment_declined',
  'paid',
  'in_production',
  'produced',
  'failed',
  'refunded',
] as const;
export type OrderState = (typeof ORDER_STATES)[number];

/** When the event happened (ISO 8601). */
const at = z.string().min(1);

export const requestViewSchema = z.object({
  /** The request's UUID. */
  id: z.string().uuid(),
  kind: z.enum(REQUEST_KINDS),
  state: z.enum(REQUEST_STATES),
  attempts: z.number().int().nonnegative(),
  requestedAt: z.string().nullable(),
  /** Set when the request failed. */
  failureCode: z.enum(FAILURE_CODES).nullable(),
});
export type RequestView = z.infer<typeof requestViewSchema>;

/** A subscription as the app reads it over REST and in `subscription.changed`. */
export const subscriptionViewSchema = z.object({
  service: z.enum(SERVICES),
  state: z.enum(SUBSCRIPTION_STATES),
  stateChangedAt: z.string(),
  lastRequest: requestViewSchema.nullable(),
});
export type SubscriptionView = z.infer<typeof subscriptionViewSchema>;

/** First on every socket, once the replica's subscription to the tenant's channel is confirmed. */
export const readyEventSchema = z.object({ type: z.literal('ready'), at });

/**
 * A subscription's new state. Every change sets its stateChangedAt (which is `at`), so
 * `subscription.service` with `subscription.stateChangedAt` identify the event.
 */
export const subscriptionChangedEventSchema = z.object({
  type: z.literal('subscription.changed'),
  at,
  subscription: subscriptionViewSchema,
});

/**
 * An open command's outcome: one per command, so `commandId` identifies it. `at` is when the outcome
 * was decided. A failure carries a code, never the partner's words.
 */
export const commandResultEventSchema = z.object({
  type: z.literal('command.result'),
  at,
  commandId: z.string().uuid(),
  service: z.enum(SERVICES),
  status: z.enum(COMMAND_OUTCOMES),
  failureCode: z.enum(FAILURE_CODES).optional(),
});

/**
 * An order's new state (or production status). `eventId` identifies it; `version` grows by one with
 * every change of the order (0 from a publisher that set none). `reason` and `productionStatus` are
 * absent when empty.
 */
export const orderStatusEventSchema = z.object({
  type: z.literal('order.status'),
  at,
  eventId: z.string().uuid(),
  orderId: z.string().uuid(),
  state: z.enum(ORDER_STATES),
  version: z.number().int().nonnegative(),
  reason: z.string().min(1).optional(),
  productionStatus: z.string().min(1).optional(),
});

/** Every event the tenant WebSocket sends. */
export const tenantEvent = z.discriminatedUnion('type', [
  readyEventSchema,
  subscriptionChangedEventSchema,
  commandResultEventSchema,
  orderStatusEventSchema,
]);
export type TenantEvent = z.infer<typeof tenantEvent>;
export type TenantEventType = TenantEvent['type'];
export type ReadyEvent = z.infer<typeof readyEventSchema>;
export type SubscriptionChangedEvent = z.infer<typeof subscriptionChangedEventSchema>;
export type CommandResultEvent = z.infer<typeof commandResultEventSchema>;
export type OrderStatusTenantEvent = z.infer<typeof orderStatusEventSchema>;

export function buildReady(at: Date = new Date()): ReadyEvent {
  return { type: 'ready', at: at.toISOString() };
}

/**
 * The event's `at` is the subscription's stateChangedAt, so a copy re-delivered from the row is the
 * same event. The view goes out field by field, as the contract has it.
 */
export function buildSubscriptionChanged(s: SubscriptionView): SubscriptionChangedEvent {
  const r = s.lastRequest;
  return {
    type: 'subscription.changed',
    at: s.stateChangedAt,
    subscription: {
      service: s.service,
      state: s.state,
      stateChangedAt: s.stateChangedAt,
      lastRequest: r && {
        id: r.id,
        kind: r.kind,
        state: r.state,
        attempts: r.attempts,
        requestedAt: r.requestedAt,
        failureCode: r.failureCode,
      },
    },
  };
}

export function buildCommandResult(c: {
  commandId: string;
  service: Service;
  status: CommandOutcome;
  /** When the outcome was decided. */
  completedAt: Date;
  failureCode?: FailureCode;
}): CommandResultEvent {
  return {
    type: 'command.result',
    at: c.completedAt.toISOString(),
    commandId: c.commandId,
    service: c.service,
    status: c.status,
    ...(c.failureCode ? { failureCode: c.failureCode } : {}),
  };
}

/**
 * From the order status event as published (kitchen's Protobuf event has these fields); an empty
 * `reason` or `productionStatus` is left out. Throws a RangeError when `occurredAtMs` is no time a
 * Date can hold.
 */
export function buildOrderStatus(e: {
  eventId: string;
  orderId: string;
  state: OrderState;
  version: number;
  occurredAtMs: number;
  reason?: string;
  productionStatus?: string;
}): OrderStatusTenantEvent {
  return {
    type: 'order.status',
    at: new Date(e.occurredAtMs).toISOString(),
    eventId: e.eventId,
    orderId: e.orderId,
    state: e.state,
    version: e.version,
    ...(e.reason ? { reason: e.reason } : {}),
    ...(e.productionStatus ? { productionStatus: e.productionStatus } : {}),
  };
}
