// API side of the order status events: consumes the Protobuf events from RabbitMQ and publishes an
// `order.status` tenant event, which the WebSocket at /v1/events forwards to the tenant's sockets.
// An event not newer than the order's last delivered version is acknowledged and dropped; a message
// that does not decode goes to the dead-letter queue; ack only after the tenant event is out.
import { readFileSync } from 'node:fs';
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { Redis } from 'ioredis';
import { createChannel } from '../../core/amqp.js';
import { toError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { TenantEventPublisher } from '../../core/tenant-events.js';
import type { KitchenMetrics } from '../../kitchen/metrics.js';
import { assertStatusTopology, decodeStatus, STATUS_QUEUE, type OrderStatusEvent } from '../../kitchen/status-events.js';

const DELIVER_LUA = readFileSync(new URL('./lua/order-status-deliver.lua', import.meta.url), 'utf8');

/**
 * How long an order's last delivered version (and an unversioned event's id) is remembered. Stale
 * copies come from publish retries and redeliveries, minutes apart; a day also covers an order that
 * fails and is refunded hours after it was placed.
 */
const REMEMBER_S = 24 * 3600;

export type DeliveryResult = 'delivered' | 'duplicate' | 'stale';

type DeliverRedis = Redis & {
  hubOrderStatusDeliver(versionKey: string, eventKey: string, version: number, ttlS: number, channel: string, event: string): Promise<DeliveryResult>;
};

export interface StatusConsumerDeps {
  amqp: AmqpConnectionManager;
  /** Names the tenant's channel; the event is published there by the delivery script. */
  publisher: TenantEventPublisher;
  /** Remembers each order's last delivered version: a repeated or older event is acknowledged, not sent. */
  redis: Redis;
  keyPrefix: string;
  logger: Logger;
  metrics: KitchenMetrics;
  prefetch?: number;
}

export function orderStatusTenantEvent(e: OrderStatusEvent) {
  return {
    type: 'order.status', at: new Date(e.occurredAtMs).toISOString(), eventId: e.eventId,
    orderId: e.orderId, state: e.state, version: e.version, ...(e.reason ? { reason: e.reason } : {}),
    ...(e.productionStatus ? { productionStatus: e.productionStatus } : {}),
  };
}

/**
 * Publishes the tenant event of an order status event unless it repeats or is older than what its
 * order delivered already; one Redis step. The script is registered once, on the connection.
 */
function orderStatusDeliverer(d: Pick<StatusConsumerDeps, 'redis' | 'keyPrefix' | 'publisher'>): (e: OrderStatusEvent) => Promise<DeliveryResult> {
  if (!('hubOrderStatusDeliver' in d.redis)) d.redis.defineCommand('hubOrderStatusDeliver', { numberOfKeys: 2, lua: DELIVER_LUA });
  const redis = d.redis as DeliverRedis;
  return (e) => redis.hubOrderStatusDeliver(
    `${d.keyPrefix}kitchen-status-version:${e.orderId}`, `${d.keyPrefix}kitchen-status-seen:${e.eventId}`,
    e.version, REMEMBER_S, d.publisher.channel(e.tenantId), JSON.stringify(orderStatusTenantEvent(e)),
  );
}

export function startOrderStatusConsumer(d: StatusConsumerDeps): ChannelWrapper {
  const log = d.logger.child({ consumer: STATUS_QUEUE });
  const deliver = orderStatusDeliverer(d);
  const onMessage = async (ch: ConfirmChannel, msg: ConsumeMessage | null) => {
    if (!msg) return;
    let event: OrderStatusEvent;
    try {
      event = decodeStatus(msg.content);
    } catch (thrown) {
      log.warn({ err: toError(thrown), messageId: msg.properties.messageId }, 'malformed order status event sent to the dead-letter queue');
      d.metrics.statusEvents.inc({ result: 'dead_lettered' });
      ch.nack(msg, false, false);
      return;
    }
    try {
      const result = await deliver(event);
      d.metrics.statusEvents.inc({ result });
      if (result !== 'delivered') log.debug({ eventId: event.eventId, orderId: event.orderId, version: event.version, result }, 'order status event dropped');
      ch.ack(msg);
    } catch (thrown) {
      // Redis is unreachable: the script did nothing, so the redelivery is decided afresh.
      log.warn({ err: toError(thrown), eventId: event.eventId }, 'order status event not delivered yet; requeued');
      setTimeout(() => ch.nack(msg, false, true), 1_000).unref();
    }
  };
  return createChannel(d.amqp, log, {
    name: 'api-kitchen-status',
    setup: async (ch: ConfirmChannel) => {
      await assertStatusTopology(ch);
      await ch.prefetch(d.prefetch ?? 50);
      await ch.consume(STATUS_QUEUE, (msg) => void onMessage(ch, msg), { noAck: false });
    },
  });
}
