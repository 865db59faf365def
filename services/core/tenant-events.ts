// Tenant events (subscription changes, command results, order status) delivered to whichever API
// replica holds the tenant's WebSockets: publishers write to a per-tenant Redis pub/sub channel,
// and each replica subscribes to the channels of the tenants connected to it, while they are.
// Pub/sub keeps nothing for a subscriber that is away, so a replica whose subscriber connection was
// lost subscribes again when it is back and then hands the time it was away to `onResubscribed`,
// which re-delivers what happened meanwhile from where it is recorded (tenant-event-catch-up.ts).
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { toError } from './errors.js';
import type { Logger } from './logger.js';
import { sleep } from './sleep.js';

/**
 * What every tenant event has, whatever its type: the platform routes events without knowing them.
 * The events themselves (the union the WebSocket sends) are a published contract, one layer up
 * (services/contracts/tenant-events.ts); publishers and subscribers are typed with it there.
 */
export interface TenantEventEnvelope {
  /** e.g. `subscription.changed`, `command.result`, `order.status` */
  type: string;
  /** When the event happened (ISO 8601). */
  at: string;
}

/** Checks an arriving event: a zod schema of the event type does. */
export interface TenantEventSchema<E extends TenantEventEnvelope> {
  parse(value: unknown): E;
}

/** An event known only by its envelope; the fields it has besides are kept. */
export type AnyTenantEvent = TenantEventEnvelope & Record<string, unknown>;

/** Checks the envelope only: for routing events whose types are not this process's to know. */
export const anyTenantEvent: TenantEventSchema<AnyTenantEvent> = z
  .object({ type: z.string().min(1), at: z.string() })
  .passthrough();

/** `json` is the event's text as published, when it arrived that way (the same object as `event`). */
export type TenantEventHandler<E extends TenantEventEnvelope = AnyTenantEvent> = (
  tenantId: string,
  event: E,
  json?: string,
) => void;

/** Tenants per pipelined write of publishEach: bounds the memory of one batch. */
const PUBLISH_BATCH = 1_000;

/** Publishes events of type `E` for a tenant; any process may publish. */
export class TenantEventPublisher<E extends TenantEventEnvelope = AnyTenantEvent> {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
  ) {}

  channel(tenantId: string): string {
    return `${this.keyPrefix}tenant-events:${tenantId}`;
  }

  /** Resolves with the number of API replicas that received it (0 when the tenant is offline). */
  async publish(tenantId: string, event: E): Promise<number> {
    return this.redis.publish(this.channel(tenantId), JSON.stringify(event));
  }

  /**
   * The same event to each of `tenantIds` (a notice to every tenant of a partner, say), pipelined
   * PUBLISH_BATCH at a time: one write and one round trip per batch instead of one per tenant,
   * which at ~20,000 tenants is the difference between tens of milliseconds and seconds.
   * Resolves with the number of deliveries to API replicas.
   */
  async publishEach(tenantIds: readonly string[], event: E): Promise<number> {
    const message = JSON.stringify(event);
    let received = 0;
    for (let i = 0; i < tenantIds.length; i += PUBLISH_BATCH) {
      const pipeline = this.redis.pipeline();
      for (const tenantId of tenantIds.slice(i, i + PUBLISH_BATCH)) {
        pipeline.publish(this.channel(tenantId), message);
      }
      for (const [err, n] of (await pipeline.exec()) ?? []) {
        if (err) throw err;
        received += Number(n);
      }
    }
    return received;
  }
}

/**
 * Resolves once the connection is ready (at once when it is). A SUBSCRIBE queued while ioredis 5
 * connects can reach Redis before its ready check's INFO, which Redis then refuses in subscriber
 * mode: the connection is torn down and the subscription silently lost (ioredis issue #2037).
 */
function whenReady(redis: Redis): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onReady = () => {
      redis.off('end', onEnd);
      resolve();
    };
    const onEnd = () => {
      redis.off('ready', onReady);
      reject(new Error('the Redis connection closed before it was ready'));
    };
    redis.once('ready', onReady);
    redis.once('end', onEnd);
  });
}

/**
 * Called once the channels are subscribed again after the connection was lost: `tenants` are those
 * with sockets here, `lostForMs` how long ago the loss began (this process's monotonic clock).
 * A rejection is retried, with the loss's start unchanged, until it resolves.
 */
type ResubscribedHandler = (tenants: readonly string[], lostForMs: number) => Promise<void>;

/** How often a failed re-subscription or re-delivery is tried again while the connection is up. */
const RECOVERY_RETRY_MS = 2_000;
/** Channels per SUBSCRIBE when subscribing again (a replica holds up to some thousands of tenants). */
const CHANNELS_PER_SUBSCRIBE = 1_000;

/**
 * Subscribes this replica to the tenants it holds sockets for. Reference-counted: the channel is
 * subscribed with the tenant's first socket and left with its last. `subscriber` must be a
 * dedicated connection (Redis puts a subscribing connection in subscriber mode). Each message is
 * checked with `schema` before the handler sees it; one that fails is logged and dropped.
 *
 * A connection that was ready and closed is a loss: events published until it is subscribed again
 * are gone. When it is ready again, every channel is subscribed again (ioredis's autoResubscribe
 * does too, but only for what its own SUBSCRIBEs reached; see whenReady) and, once Redis confirmed
 * them, `onResubscribed` learns how long the loss lasted.
 */
export class TenantEventSubscriber<E extends TenantEventEnvelope = AnyTenantEvent> {
  private readonly refs = new Map<string, number>();
  private readonly prefix: string;
  private readonly stopped = new AbortController();
  private wasReady: boolean;
  /** When the current loss began (performance.now()), until its events are re-delivered. */
  private lostAt: number | undefined;
  /** Counts the connection's closes: a recovery that saw one meanwhile is not complete. */
  private closes = 0;
  private recovering: Promise<void> | undefined;

  constructor(
    private readonly subscriber: Redis,
    keyPrefix: string,
    private readonly logger: Logger,
    private readonly schema: TenantEventSchema<E>,
    private readonly handler: TenantEventHandler<E>,
    private readonly onResubscribed?: ResubscribedHandler,
  ) {
    this.prefix = `${keyPrefix}tenant-events:`;
    this.wasReady = subscriber.status === 'ready';
    subscriber.on('message', (channel: string, message: string) =>
      this.onMessage(channel, message),
    );
    subscriber.on('close', () => this.onClose());
    subscriber.on('ready', () => this.onReady());
  }

  async add(tenantId: string): Promise<void> {
    const n = (this.refs.get(tenantId) ?? 0) + 1;
    this.refs.set(tenantId, n);
    if (n === 1) {
      await whenReady(this.subscriber);
      await this.subscriber.subscribe(this.prefix + tenantId);
    }
  }

  async remove(tenantId: string): Promise<void> {
    const n = (this.refs.get(tenantId) ?? 0) - 1;
    if (n > 0) {
      this.refs.set(tenantId, n);
      return;
    }
    this.refs.delete(tenantId);
    await this.subscriber
      .unsubscribe(this.prefix + tenantId)
      .catch((e: unknown) =>
        this.logger.warn({ err: toError(e) }, 'could not leave a tenant channel'),
      );
  }

  /**
   * Stops recovering; a read in flight is not waited for (a shutdown never waits on a database
   * that is away). The connection itself is the caller's to close.
   */
  close(): void {
    this.stopped.abort();
  }

  private onClose(): void {
    this.closes += 1;
    // Each failed reconnect closes again: the loss began at the first close after being ready.
    if (!this.wasReady || this.lostAt !== undefined || this.stopped.signal.aborted) return;
    this.wasReady = false;
    this.lostAt = performance.now();
    this.logger.warn(
      { tenants: this.refs.size },
      'tenant event subscription lost (Redis connection closed); events published until it is back are re-delivered from PostgreSQL then',
    );
  }

  private onReady(): void {
    this.wasReady = true;
    if (this.lostAt !== undefined) this.recover();
  }

  private recover(): void {
    this.recovering ??= this.recoverLoop().finally(() => {
      this.recovering = undefined;
      // Ready again while the last attempt was on its way out.
      if (
        this.lostAt !== undefined &&
        this.subscriber.status === 'ready' &&
        !this.stopped.signal.aborted
      ) {
        this.recover();
      }
    });
  }

  private async recoverLoop(): Promise<void> {
    let failing = false;
    while (
      this.lostAt !== undefined &&
      this.subscriber.status === 'ready' &&
      !this.stopped.signal.aborted
    ) {
      const lostAt = this.lostAt;
      const closes = this.closes;
      try {
        const tenants = [...this.refs.keys()];
        await this.resubscribe(tenants);
        await this.onResubscribed?.(tenants, performance.now() - lostAt);
        // A close meanwhile may have lost more: the next 'ready' recovers from the same start.
        if (this.closes === closes) this.lostAt = undefined;
        return;
      } catch (thrown) {
        if (!failing) {
          this.logger.warn(
            { err: toError(thrown) },
            `tenant events not re-delivered after the subscription was lost; retrying every ${RECOVERY_RETRY_MS / 1000} s`,
          );
        }
        failing = true;
        if (!(await sleep(RECOVERY_RETRY_MS, this.stopped.signal))) return;
      }
    }
  }

  /**
   * Subscribes every tenant's channel again and resolves once Redis confirmed them all. A tenant
   * whose last socket went meanwhile is left again (its own UNSUBSCRIBE may have gone out first).
   */
  private async resubscribe(tenants: readonly string[]): Promise<void> {
    for (let i = 0; i < tenants.length; i += CHANNELS_PER_SUBSCRIBE) {
      const chunk = tenants.slice(i, i + CHANNELS_PER_SUBSCRIBE);
      await this.subscriber.subscribe(...chunk.map((t) => this.prefix + t));
      const gone = chunk.filter((t) => !this.refs.has(t));
      if (gone.length > 0) await this.subscriber.unsubscribe(...gone.map((t) => this.prefix + t));
    }
  }

  private onMessage(channel: string, message: string): void {
    if (!channel.startsWith(this.prefix)) return;
    const tenantId = channel.slice(this.prefix.length);
    let event: E;
    try {
      event = this.schema.parse(JSON.parse(message));
    } catch (thrown) {
      this.logger.warn({ err: toError(thrown), channel }, 'dropped a malformed tenant event');
      return;
    }
    this.handler(tenantId, event, message);
  }
}
