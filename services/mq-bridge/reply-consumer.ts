// Consumes partner replies from the hub's reply queue. A reply is acknowledged only after its
// effect is committed (PostgreSQL for subscriptions, Redis for open commands). A message that is
// not the contract is dead-lettered with the reason; a duplicate, late or unknown reply is logged,
// counted and acknowledged; a transient failure (database or Redis down) is retried in place and
// then handed back, and the queue's delivery limit dead-letters a message that never succeeds.
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { Knex } from 'knex';
import { classifyError, toError } from '../core/errors.js';
import { retryDelayMs } from '../core/engine/backoff.js';
import { createChannel } from '../core/amqp.js';
import type { Logger } from '../core/logger.js';
import type { TenantEventPublisher } from '../core/tenant-events.js';
import { sleep } from '../core/sleep.js';
import type { CommandCache } from './command-cache.js';
import { parseReply, type ReplyMessage } from './messages.js';
import type { SmartHomeMetrics } from './metrics.js';
import { applySubscriptionReply, pushSubscriptionChange } from './requests.js';
import { assertBaseTopology, DEAD_LETTER_EXCHANGE, REPLIES_QUEUE } from './topology.js';

export interface ReplyConsumerDeps {
  conn: AmqpConnectionManager;
  db: Knex;
  cache: CommandCache;
  events: TenantEventPublisher;
  metrics: SmartHomeMetrics;
  logger: Logger;
  prefetch: number;
  /** In-place retries of a transient failure before the message is handed back to the queue. */
  transientRetries?: number;
}

export class ReplyConsumer {
  private channel: ChannelWrapper | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly stopping = new AbortController();

  constructor(private readonly d: ReplyConsumerDeps) {}

  async start(): Promise<void> {
    this.channel = createChannel(this.d.conn, this.d.logger, {
      name: 'smart-home-replies',
      confirm: true,
      setup: (ch: ConfirmChannel) => assertBaseTopology(ch),
    });
    await this.channel.consume(REPLIES_QUEUE, (msg) => this.track(this.onMessage(msg)), { prefetch: this.d.prefetch });
  }

  /** Stops consuming, lets in-flight replies finish (their acks go out), then closes the channel. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.channel?.cancelAll().catch(() => undefined);
    await Promise.all(this.inFlight);
    await this.channel?.close().catch(() => undefined);
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private async onMessage(msg: ConsumeMessage): Promise<void> {
    const ch = this.channel;
    if (!ch) return;
    const partner = msg.fields.routingKey;
    const parsed = parseReply(msg.content);
    if (!parsed.ok) {
      this.d.metrics.replies.inc({ type: String(msg.properties.type ?? 'unknown'), result: 'malformed' });
      this.d.logger.warn({ partner, messageId: msg.properties.messageId, reason: parsed.reason }, 'malformed reply dead-lettered');
      await this.deadLetter(ch, msg, parsed.reason);
      return;
    }
    const reply = parsed.reply;
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.apply(reply, partner);
        this.d.metrics.replies.inc({ type: reply.type, result });
        const log = { partner, messageId: reply.messageId, correlationId: reply.correlationId, type: reply.type, result };
        if (result === 'applied') this.d.logger.info(log, 'partner reply applied');
        else this.d.logger.warn(log, 'partner reply changed nothing');
        ch.ack(msg);
        return;
      } catch (thrown) {
        const err = toError(thrown);
        const transient = classifyError(err).retryable;
        if (transient && attempt <= (this.d.transientRetries ?? 5) && !this.stopping.signal.aborted) {
          await sleep(retryDelayMs(attempt, { baseMs: 200, maxMs: 5_000, factor: 2 }), this.stopping.signal);
          continue;
        }
        this.d.logger.error({ err, partner, messageId: reply.messageId, correlationId: reply.correlationId }, 'reply not applied; handed back to the queue');
        if (transient) ch.nack(msg, false, true);
        else await this.deadLetter(ch, msg, err.message);
        return;
      }
    }
  }

  private async apply(reply: ReplyMessage, partner: string): Promise<string> {
    if (reply.type === 'device.open.result') return this.applyOpen(reply, partner);
    const applied = await applySubscriptionReply(this.d.db, reply, partner);
    if (applied.result === 'applied' && applied.tenantId && applied.subscription)
      await pushSubscriptionChange(this.d.events, this.d.logger, applied.tenantId, applied.subscription);
    return applied.result;
  }

  private async applyOpen(reply: ReplyMessage, partner: string): Promise<string> {
    const status = reply.payload.outcome === 'success' ? 'opened' : 'failed';
    const settled = await this.d.cache.settle(reply.correlationId, status, { reason: reply.payload.reason, partner, service: reply.service });
    if (settled.result !== 'settled') return settled.result;
    this.d.metrics.roundTrip.observe({ service: reply.service }, settled.elapsedMs / 1000);
    return 'applied';
  }

  /** Moves the message to the dead-letter exchange with the reason, then acknowledges it. */
  private async deadLetter(ch: ChannelWrapper, msg: ConsumeMessage, reason: string): Promise<void> {
    try {
      await ch.publish(DEAD_LETTER_EXCHANGE, msg.fields.routingKey, msg.content, {
        ...msg.properties,
        persistent: true,
        headers: { ...msg.properties.headers, 'x-hub-reason': reason.slice(0, 500), 'x-hub-source-queue': REPLIES_QUEUE },
      });
      ch.ack(msg);
    } catch (thrown) {
      // The broker dead-letters a rejected message through the queue's own dead-letter exchange.
      this.d.logger.warn({ err: toError(thrown) }, 'could not publish to the dead-letter exchange; rejecting instead');
      ch.nack(msg, false, false);
    }
  }
}
