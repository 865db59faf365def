// API side of the order status events: consumes the Protobuf events from RabbitMQ and publishes an
// `order.status` tenant event, which the WebSocket at /v1/events forwards to the tenant's sockets.
// An event not newer than the order's last delivered version is acknowledged and dropped; a message
// that does not decode (or is oversized) goes to the dead-letter queue with the reason in its
// `x-hub-reason` header; ack only after the tenant event is out, on the channel the message came
// on. A message whose channel closed meanwhile is left to the broker, which redelivers it.
import { readFileSync } from 'node:fs';
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel } from 'amqplib';
import { ReplyError, type Redis } from 'ioredis';
import { createChannel, QueueConsumer, type Delivery } from '../../core/amqp.js';
import { clip, MAX_REASON_TEXT } from '../../core/bounds.js';
import { toError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { reportRedisFailure } from '../../core/redis.js';
import type { TenantEventPublisher } from '../../core/tenant-events.js';
import { buildOrderStatus, type TenantEvent } from '../../contracts/tenant-events.js';
import type { KitchenMetrics } from '../../domains/kitchen/metrics.js';
import {
  assertStatusTopology,
  DEAD_EXCHANGE,
  decodeStatusOrReason,
  type OrderStatusEvent,
  type StatusRoute,
} from '../../domains/kitchen/status-events.js';

const DELIVER_LUA = readFileSync(
  new URL('./lua/order-status-deliver.lua', import.meta.url),
  'utf8',
);

/**
 * How long an order's last delivered version (and an unversioned event's id) is remembered. Stale
 * copies come from publish retries and redeliveries, minutes apart; a day also covers an order that
 * fails and is refunded hours after it was placed.
 */
const REMEMBER_S = 24 * 3600;

type DeliveryResult = 'delivered' | 'duplicate' | 'stale';

type DeliverRedis = Redis & {
  hubOrderStatusDeliver(
    versionKey: string,
    eventKey: string,
    version: number,
    ttlS: number,
    channel: string,
    event: string,
  ): Promise<DeliveryResult>;
};

interface StatusConsumerDeps {
  /** The installation's queue and routing key (`statusRoute(HUB_INSTALLATION)`). */
  route: StatusRoute;
  amqp: AmqpConnectionManager;
  /** Names the tenant's channel; the event is published there by the delivery script. */
  publisher: TenantEventPublisher<TenantEvent>;
  /** Remembers each order's last delivered version: a repeated or older event is acknowledged, not sent. */
  redis: Redis;
  keyPrefix: string;
  logger: Logger;
  metrics: KitchenMetrics;
  prefetch?: number;
}

/**
 * Publishes the tenant event of an order status event unless it repeats or is older than what its
 * order delivered already; one Redis step. The script is registered once, on the connection.
 */
function orderStatusDeliverer(
  d: Pick<StatusConsumerDeps, 'redis' | 'keyPrefix' | 'publisher'>,
): (e: OrderStatusEvent, tenantEvent: string) => Promise<DeliveryResult> {
  if (!('hubOrderStatusDeliver' in d.redis)) {
    d.redis.defineCommand('hubOrderStatusDeliver', { numberOfKeys: 2, lua: DELIVER_LUA });
  }
  const redis = d.redis as DeliverRedis;
  return (e, tenantEvent) =>
    redis.hubOrderStatusDeliver(
      `${d.keyPrefix}kitchen-status-version:${e.orderId}`,
      `${d.keyPrefix}kitchen-status-seen:${e.eventId}`,
      e.version,
      REMEMBER_S,
      d.publisher.channel(e.tenantId),
      tenantEvent,
    );
}

/** The event and its tenant event (`order.status`) as JSON, or why these bytes can never become one (retrying cannot help). */
function prepare(
  bytes: Buffer,
): { ok: true; event: OrderStatusEvent; json: string } | { ok: false; reason: string } {
  const decoded = decodeStatusOrReason(bytes);
  if (!decoded.ok) return decoded;
  try {
    return {
      ok: true,
      event: decoded.event,
      json: JSON.stringify(buildOrderStatus(decoded.event)),
    };
  } catch (thrown) {
    return { ok: false, reason: `the tenant event cannot be built: ${toError(thrown).message}` };
  }
}

/**
 * Republishes the message to the dead-letter exchange with a short reason, then acknowledges it.
 * If that publish is not confirmed, the message is rejected and the queue's own dead-lettering
 * moves it (without the reason).
 */
async function deadLetter(
  d: Delivery<ConfirmChannel>,
  reason: string,
  sourceQueue: string,
  log: Logger,
): Promise<void> {
  const { msg, channel: ch } = d;
  try {
    await new Promise<void>((resolve, reject) => {
      // Throws at once when the channel has closed; the broker then redelivers the message.
      ch.publish(
        DEAD_EXCHANGE,
        msg.fields.routingKey,
        msg.content,
        {
          ...msg.properties,
          persistent: true,
          headers: {
            ...msg.properties.headers,
            'x-hub-reason': clip(reason, MAX_REASON_TEXT),
            'x-hub-source-queue': sourceQueue,
            'x-hub-source-exchange': msg.fields.exchange,
          },
        },
        (err: unknown) => (err ? reject(toError(err)) : resolve()),
      );
    });
    d.ack();
  } catch (thrown) {
    log.warn(
      { err: toError(thrown) },
      'could not publish to the dead-letter exchange; rejecting instead',
    );
    d.nack(false);
  }
}

export function startOrderStatusConsumer(d: StatusConsumerDeps): ChannelWrapper {
  const log = d.logger.child({ consumer: d.route.queue });
  const deliver = orderStatusDeliverer(d);
  const onMessage = async (delivery: Delivery<ConfirmChannel>) => {
    const { msg } = delivery;
    const prepared = prepare(msg.content);
    if (!prepared.ok) {
      log.warn(
        { messageId: msg.properties.messageId, bytes: msg.content.length, reason: prepared.reason },
        'malformed order status event sent to the dead-letter queue',
      );
      d.metrics.statusEvents.inc({ result: 'dead_lettered' });
      await deadLetter(delivery, prepared.reason, d.route.queue, log);
      return;
    }
    const { event, json } = prepared;
    try {
      const result = await deliver(event, json);
      d.metrics.statusEvents.inc({ result });
      if (result !== 'delivered') {
        log.debug(
          { eventId: event.eventId, orderId: event.orderId, version: event.version, result },
          'order status event dropped',
        );
      }
      delivery.ack();
    } catch (thrown) {
      const err = toError(thrown);
      // Redis answered with an error: the script refused this event, and would refuse it again.
      if (err instanceof ReplyError) {
        log.warn(
          { err, eventId: event.eventId },
          'order status event refused by the delivery script; sent to the dead-letter queue',
        );
        d.metrics.statusEvents.inc({ result: 'dead_lettered' });
        await deadLetter(
          delivery,
          clip(`the delivery script refused it: ${err.message}`, MAX_REASON_TEXT),
          d.route.queue,
          log,
        );
        return;
      }
      // Redis is unreachable: the script did nothing, so the redelivery is decided afresh.
      reportRedisFailure(d.redis, log, err, 'order status event delivery (requeued)', {
        eventId: event.eventId,
      });
      setTimeout(() => delivery.nack(true), 1_000).unref();
    }
  };
  const consumer = new QueueConsumer<ConfirmChannel>({
    queue: d.route.queue,
    prefetch: d.prefetch ?? 50,
    logger: log,
    conn: d.amqp,
    onMessage: (delivery) =>
      void onMessage(delivery).catch((e: unknown) =>
        log.error(
          { err: toError(e) },
          'order status event handling failed; rabbitmq redelivers it',
        ),
      ),
  });
  return createChannel(d.amqp, log, {
    name: 'api-kitchen-status',
    // A confirm channel: the dead-letter publish waits for the broker's confirm before the ack.
    confirm: true,
    setup: async (ch: ConfirmChannel) => {
      await assertStatusTopology(ch, d.route);
      await consumer.setup(ch);
    },
  });
}
