// Consumes partner replies from the hub's reply queue. A reply is acknowledged only after its
// effect is committed in PostgreSQL (subscriptions and open commands alike; an open command's
// result is then pushed through Redis, and a push that fails is left to the api's sweep). A message that is
// not the contract is dead-lettered with the reason; a duplicate, late or unknown reply is logged,
// counted and acknowledged; a transient failure (database down) is retried in place and
// then handed back, and the queue's delivery limit dead-letters a message that never succeeds.
// Every ack and nack goes to the channel the reply came on; if that channel closed meanwhile (a
// reconnect), the reply is left alone: the broker redelivers it and applying it again changes nothing.
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel } from 'amqplib';
import type { Knex } from 'knex';
import { clip, MAX_REASON_TEXT } from '../../core/bounds.js';
import { resourceName } from '../../core/resource.js';
import { classifyError, toError } from '../../core/errors.js';
import { retryDelayMs } from '../../core/engine/backoff.js';
import { createChannel, QueueConsumer, type Delivery } from '../../core/amqp.js';
import type { Logger } from '../../core/logger.js';
import type { TenantEventPublisher } from '../../core/tenant-events.js';
import type { TenantEvent } from '../../contracts/tenant-events.js';
import { sleep } from '../../core/sleep.js';
import type { CommandPush } from './command-push.js';
import { statusOfOutcome } from './command-state.js';
import type { CommandStore } from './command-store.js';
import { parseReply, REPLY_TYPES, type ReplyMessage } from '../../contracts/smart-home-messages.js';
import type { SmartHomeMetrics } from './metrics.js';
import { applySubscriptionReply, pushSubscriptionChange } from './requests.js';
import {
  assertRepliesTopology,
  DEAD_LETTER_EXCHANGE,
  REPLIES_QUEUE,
} from '../../contracts/smart-home-topology.js';

interface ReplyConsumerDeps {
  conn: AmqpConnectionManager;
  db: Knex;
  commands: CommandStore;
  push: CommandPush;
  events: TenantEventPublisher<TenantEvent>;
  metrics: SmartHomeMetrics;
  logger: Logger;
  prefetch: number;
  /** This installation's reply queue (`repliesQueue(HUB_INSTALLATION)`); `smart-home.replies` by default. */
  queue?: string;
  /** In-place retries of a transient failure before the message is handed back to the queue. */
  transientRetries?: number;
}

/** A metric label from the message's AMQP type: a partner could otherwise mint a series per message. */
function replyTypeLabel(type: unknown): string {
  return (REPLY_TYPES as readonly unknown[]).includes(type) ? String(type) : 'unknown';
}

export class ReplyConsumer {
  private channel: ChannelWrapper | undefined;
  private readonly consumer: QueueConsumer<ConfirmChannel>;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly stopping = new AbortController();
  private readonly queue: string;

  constructor(private readonly d: ReplyConsumerDeps) {
    this.queue = d.queue ?? REPLIES_QUEUE;
    this.consumer = new QueueConsumer<ConfirmChannel>({
      queue: this.queue,
      prefetch: d.prefetch,
      logger: d.logger,
      conn: d.conn,
      onMessage: (delivery) => this.track(this.onMessage(delivery)),
    });
  }

  /** Creates the channel; the consumer starts on it whenever RabbitMQ is (again) connected. */
  async start(): Promise<void> {
    this.channel = createChannel(this.d.conn, this.d.logger, {
      name: 'smart-home-replies',
      confirm: true,
      setup: async (ch: ConfirmChannel) => {
        await assertRepliesTopology(ch, this.queue);
        await this.consumer.setup(ch);
      },
    });
    // With the broker up, start-up goes on once the queue is consumed; otherwise the reconnect does it.
    if (this.d.conn.isConnected()) await this.channel.waitForConnect();
    this.d.logger.info({ queue: this.queue }, 'consuming partner replies');
  }

  /** Stops consuming, lets in-flight replies finish (their acks go out), then closes the channel. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.consumer.cancel();
    await Promise.all(this.inFlight);
    await this.channel?.close().catch(() => undefined);
  }

  /** Holds the handling until stop(); a failure is logged (the broker redelivers the reply). */
  private track(p: Promise<void>): void {
    const handled = p.catch((e: unknown) =>
      this.d.logger.error({ err: toError(e) }, 'reply handling failed; rabbitmq redelivers it'),
    );
    this.inFlight.add(handled);
    void handled.finally(() => this.inFlight.delete(handled));
  }

  private async onMessage(delivery: Delivery<ConfirmChannel>): Promise<void> {
    const { msg } = delivery;
    const partner = msg.fields.routingKey;
    // Partners publish with their own name as the routing key; any other key names no partner
    // (and could not be stored: PostgreSQL refuses NUL in text).
    const parsed = resourceName.safeParse(partner).success
      ? parseReply(msg.content)
      : { ok: false as const, reason: 'the routing key is not a partner name' };
    if (!parsed.ok) {
      this.d.metrics.replies.inc({
        type: replyTypeLabel(msg.properties.type),
        result: 'malformed',
      });
      this.d.logger.warn(
        {
          partner: clip(partner, 100),
          messageId: clip(String(msg.properties.messageId ?? ''), 100),
          bytes: msg.content.length,
          reason: parsed.reason,
        },
        'malformed reply dead-lettered',
      );
      await this.deadLetter(delivery, parsed.reason);
      return;
    }
    const reply = parsed.reply;
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.apply(reply, partner);
        this.d.metrics.replies.inc({ type: reply.type, result });
        // The partner's reason is for operators (tenants get a failure code): it is logged here.
        const log = {
          partner,
          messageId: reply.messageId,
          correlationId: reply.correlationId,
          type: reply.type,
          result,
          outcome: reply.payload.outcome,
          reason: reply.payload.reason,
        };
        if (result === 'applied') this.d.logger.info(log, 'partner reply applied');
        else if (result === 'applied_late') {
          this.d.logger.warn(
            log,
            'partner reply applied after the request had failed for want of a reply: the partner acted on it',
          );
        }
        // Another installation on the vhost receives every reply too: one to a command this one
        // never sent (or no longer keeps) is routine, not a warning.
        else if (result === 'unknown') {
          this.d.logger.info(
            log,
            'reply to a command this installation does not know; acknowledged',
          );
        } else this.d.logger.warn(log, 'partner reply changed nothing');
        delivery.ack();
        return;
      } catch (thrown) {
        const err = toError(thrown);
        const transient = classifyError(err).retryable;
        if (
          transient &&
          attempt <= (this.d.transientRetries ?? 5) &&
          !this.stopping.signal.aborted
        ) {
          await sleep(
            retryDelayMs(attempt, { baseMs: 200, maxMs: 5_000, factor: 2 }),
            this.stopping.signal,
          );
          continue;
        }
        this.d.logger.error(
          { err, partner, messageId: reply.messageId, correlationId: reply.correlationId },
          'reply not applied; handed back to the queue',
        );
        if (transient) delivery.nack(true);
        else {
          this.d.metrics.replies.inc({ type: reply.type, result: 'not_applied' });
          await this.deadLetter(delivery, err.message);
        }
        return;
      }
    }
  }

  private async apply(reply: ReplyMessage, partner: string): Promise<string> {
    if (reply.type === 'device.open.result') return this.applyOpen(reply, partner);
    const applied = await applySubscriptionReply(this.d.db, reply, partner);
    if (
      (applied.result === 'applied' || applied.result === 'applied_late') &&
      applied.tenantId &&
      applied.subscription
    ) {
      await pushSubscriptionChange(
        this.d.events,
        this.d.logger,
        applied.tenantId,
        applied.subscription,
      );
    }
    return applied.result;
  }

  private async applyOpen(reply: ReplyMessage, partner: string): Promise<string> {
    const status = statusOfOutcome(reply.payload.outcome);
    const settled = await this.d.commands.settle(reply.correlationId, status, {
      reason: reply.payload.reason,
      partner,
      service: reply.service,
    });
    if (settled.ended) await this.d.push.push([settled.ended]);
    if (settled.result !== 'settled' || !settled.ended?.completedAt) return settled.result;
    this.d.metrics.roundTrip.observe(
      { service: reply.service },
      (settled.ended.completedAt.getTime() - settled.ended.createdAt.getTime()) / 1000,
    );
    return 'applied';
  }

  /**
   * Moves the message to the dead-letter exchange with the reason (through the wrapper, which
   * holds the publish across a reconnect), then acknowledges it on its own channel.
   */
  private async deadLetter(delivery: Delivery<ConfirmChannel>, reason: string): Promise<void> {
    const { msg } = delivery;
    const ch = this.channel;
    if (!ch) return;
    try {
      await ch.publish(DEAD_LETTER_EXCHANGE, msg.fields.routingKey, msg.content, {
        ...msg.properties,
        persistent: true,
        headers: {
          ...msg.properties.headers,
          'x-hub-reason': clip(reason, MAX_REASON_TEXT),
          'x-hub-source-queue': this.queue,
          'x-hub-source-exchange': msg.fields.exchange,
        },
      });
      delivery.ack();
    } catch (thrown) {
      // The broker dead-letters a rejected message through the queue's own dead-letter exchange.
      this.d.logger.warn(
        { err: toError(thrown) },
        'could not publish to the dead-letter exchange; rejecting instead',
      );
      delivery.nack(false);
    }
  }
}
