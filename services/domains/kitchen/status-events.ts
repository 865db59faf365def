// Order status events as Protobuf (proto/kitchen/v1/order_status.proto) on RabbitMQ: the topology
// both sides declare, encoding with validation, and decoding that rejects what is not an event.
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { z } from 'zod';
import { clip, MAX_REASON_TEXT } from '../../core/bounds.js';
import { toError } from '../../core/errors.js';
import { parseWithReason } from '../../core/validation.js';
import { ORDER_STATES } from './order-state.js';

export const STATUS_EXCHANGE = 'kitchen.events';
/** The routing key of the installation without a name (HUB_INSTALLATION unset). */
export const STATUS_ROUTING_KEY = 'order.status';
/** The queue of the installation without a name (HUB_INSTALLATION unset). */
export const STATUS_QUEUE = 'kitchen.order-status';
export const DEAD_EXCHANGE = 'kitchen.events.dlx';
export const DEAD_QUEUE = 'kitchen.order-status.dead';
export const CONTENT_TYPE =
  'application/x-protobuf; proto=integrationhub.kitchen.v1.OrderStatusChanged';

const root = protobuf.loadSync(
  fileURLToPath(new URL('../../../proto/kitchen/v1/order_status.proto', import.meta.url)),
);
const Message = root.lookupType('integrationhub.kitchen.v1.OrderStatusChanged');

/** The largest time in milliseconds a JavaScript Date can represent. */
const MAX_DATE_MS = 8.64e15;

export const orderStatusEvent = z.object({
  eventId: z.string().uuid(),
  orderId: z.string().uuid(),
  tenantId: z.string().min(1),
  state: z.enum(ORDER_STATES),
  reason: z.string(),
  /** A time a Date can hold (±8.64e15 ms); a larger int64 would make the tenant event unbuildable. */
  occurredAtMs: z.number().int().positive().max(MAX_DATE_MS),
  /** The order's version after the change; 0 when the publisher did not set one. */
  version: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  /** The robots' status while (and once) it is produced; empty before, and from older publishers. */
  productionStatus: z.string().max(64),
});
export type OrderStatusEvent = z.infer<typeof orderStatusEvent>;

export function encodeStatus(e: OrderStatusEvent): Buffer {
  return Buffer.from(Message.encode(Message.fromObject(orderStatusEvent.parse(e))).finish());
}

/**
 * The largest event a consumer decodes. An event is ~200 bytes; its free text (the reason) is cut
 * to 500 characters where it is written, so 16 KiB is generous and a megabyte of text is refused
 * before protobufjs copies it into strings.
 */
const MAX_STATUS_EVENT_BYTES = 16 * 1024;

type DecodedStatus = { ok: true; event: OrderStatusEvent } | { ok: false; reason: string };

/** Decodes and validates; bytes that are not a complete, valid event give a short reason. */
export function decodeStatusOrReason(bytes: Uint8Array): DecodedStatus {
  if (bytes.length > MAX_STATUS_EVENT_BYTES) {
    return {
      ok: false,
      reason: `message is ${bytes.length} bytes; an order status event is at most ${MAX_STATUS_EVENT_BYTES}`,
    };
  }
  let obj: unknown;
  try {
    obj = Message.toObject(Message.decode(bytes), { longs: Number, defaults: true });
  } catch (thrown) {
    return {
      ok: false,
      reason: clip(
        `not an OrderStatusChanged message: ${toError(thrown).message}`,
        MAX_REASON_TEXT,
      ),
    };
  }
  const parsed = parseWithReason(orderStatusEvent, obj);
  return parsed.ok
    ? { ok: true, event: parsed.value }
    : {
        ok: false,
        reason: clip(`not a valid order status event: ${parsed.reason}`, MAX_REASON_TEXT),
      };
}

/** Minimal channel surface used for the topology (amqplib's Channel and ConfirmChannel have it). */
interface TopologyChannel {
  assertExchange(name: string, type: string, o: { durable: boolean }): Promise<unknown>;
  assertQueue(
    name: string,
    o: { durable: boolean; arguments?: Record<string, unknown> },
  ): Promise<unknown>;
  bindQueue(queue: string, exchange: string, key: string): Promise<unknown>;
}

/**
 * Where an installation's order status events travel: its kitchen publishes them with its own
 * routing key, and its api consumes its own queue, bound with that key alone. Two hubs on one vhost
 * (each with its own HUB_INSTALLATION) thus never see each other's orders; a queue they shared would
 * hand each event to one of them at random. The exchanges and the dead-letter queue are the vhost's.
 */
export interface StatusRoute {
  routingKey: string;
  queue: string;
}

export const statusRoute = (installation?: string): StatusRoute =>
  installation
    ? {
        routingKey: `${STATUS_ROUTING_KEY}.${installation}`,
        queue: `${STATUS_QUEUE}.${installation}`,
      }
    : { routingKey: STATUS_ROUTING_KEY, queue: STATUS_QUEUE };

/** The exchanges and the dead-letter queue, the vhost's (what the dead-letter capture needs). */
export async function assertStatusDeadLetters(ch: TopologyChannel): Promise<void> {
  await ch.assertExchange(STATUS_EXCHANGE, 'topic', { durable: true });
  await ch.assertExchange(DEAD_EXCHANGE, 'fanout', { durable: true });
  await ch.assertQueue(DEAD_QUEUE, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await ch.bindQueue(DEAD_QUEUE, DEAD_EXCHANGE, '');
}

/**
 * The vhost's part and an installation's queue, declared by the publisher and the consumer alike,
 * so neither depends on who starts first.
 */
export async function assertStatusTopology(
  ch: TopologyChannel,
  route: StatusRoute = statusRoute(),
): Promise<void> {
  await assertStatusDeadLetters(ch);
  await ch.assertQueue(route.queue, {
    durable: true,
    arguments: { 'x-queue-type': 'quorum', 'x-dead-letter-exchange': DEAD_EXCHANGE },
  });
  await ch.bindQueue(route.queue, STATUS_EXCHANGE, route.routingKey);
}
