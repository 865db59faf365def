// API side of the order status events: consumes the Protobuf events from RabbitMQ and publishes an
// `order.status` tenant event, which the WebSocket at /v1/events forwards to the tenant's sockets.
// A message that does not decode goes to the dead-letter queue; ack only after the tenant event is out.
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { Redis } from 'ioredis';
import { createChannel } from '../../core/amqp.js';
import { toError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { TenantEventPublisher } from '../../core/tenant-events.js';
import type { KitchenMetrics } from '../../kitchen/metrics.js';
import { assertStatusTopology, decodeStatus, STATUS_QUEUE, type OrderStatusEvent } from '../../kitchen/status-events.js';

export interface StatusConsumerDeps {
  amqp: AmqpConnectionManager;
  publisher: TenantEventPublisher;
  /** Remembers delivered event ids for an hour: a redelivered event is acknowledged, not re-sent. */
  redis: Redis;
  keyPrefix: string;
  logger: Logger;
  metrics: KitchenMetrics;
  prefetch?: number;
}

export function orderStatusTenantEvent(e: OrderStatusEvent) {
  return {
    type: 'order.status', at: new Date(e.occurredAtMs).toISOString(), eventId: e.eventId,
    orderId: e.orderId, state: e.state, ...(e.reason ? { reason: e.reason } : {}),
  };
}

export function startOrderStatusConsumer(d: StatusConsumerDeps): ChannelWrapper {
  const log = d.logger.child({ consumer: STATUS_QUEUE });
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
      const first = await d.redis.set(`${d.keyPrefix}kitchen-status-seen:${event.eventId}`, '1', 'EX', 3600, 'NX');
      if (first === 'OK') {
        await d.publisher.publish(event.tenantId, orderStatusTenantEvent(event));
        d.metrics.statusEvents.inc({ result: 'delivered' });
      }
      ch.ack(msg);
    } catch (thrown) {
      // Redis is unreachable: give the message back and try again on redelivery.
      await d.redis.del(`${d.keyPrefix}kitchen-status-seen:${event.eventId}`).catch(() => undefined);
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
