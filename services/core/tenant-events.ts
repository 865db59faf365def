// Tenant events (subscription changes, command results, order status) delivered to whichever API
// replica holds the tenant's WebSockets: publishers write to a per-tenant Redis pub/sub channel,
// and each replica subscribes to the channels of the tenants connected to it, while they are.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { toError } from './errors.js';
import type { Logger } from './logger.js';

export const tenantEvent = z
  .object({
    /** e.g. `subscription.changed`, `command.result`, `order.status` */
    type: z.string().min(1),
    /** When the event happened (ISO 8601). */
    at: z.string(),
  })
  .passthrough();
export type TenantEvent = z.infer<typeof tenantEvent>;

export type TenantEventHandler = (tenantId: string, event: TenantEvent) => void;

/** Publishes events for a tenant; any process may publish. */
export class TenantEventPublisher {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
  ) {}

  channel(tenantId: string): string {
    return `${this.keyPrefix}tenant-events:${tenantId}`;
  }

  /** Resolves with the number of API replicas that received it (0 when the tenant is offline). */
  async publish(tenantId: string, event: TenantEvent): Promise<number> {
    return this.redis.publish(this.channel(tenantId), JSON.stringify(event));
  }
}

/**
 * Resolves once the connection is ready (at once when it is). A SUBSCRIBE queued while ioredis 5
 * connects can reach Redis before its ready check's INFO, which Redis then refuses in subscriber
 * mode: the connection is torn down and the subscription silently lost (ioredis issue #2037).
 */
export function whenReady(redis: Redis): Promise<void> {
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
 * Subscribes this replica to the tenants it holds sockets for. Reference-counted: the channel is
 * subscribed with the tenant's first socket and left with its last. `subscriber` must be a
 * dedicated connection (Redis puts a subscribing connection in subscriber mode).
 */
export class TenantEventSubscriber {
  private readonly refs = new Map<string, number>();
  private readonly prefix: string;

  constructor(
    private readonly subscriber: Redis,
    keyPrefix: string,
    private readonly logger: Logger,
    private readonly handler: TenantEventHandler,
  ) {
    this.prefix = `${keyPrefix}tenant-events:`;
    subscriber.on('message', (channel: string, message: string) => this.onMessage(channel, message));
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
    await this.subscriber.unsubscribe(this.prefix + tenantId).catch((e: unknown) =>
      this.logger.warn({ err: toError(e) }, 'could not leave a tenant channel'),
    );
  }

  get tenants(): number {
    return this.refs.size;
  }

  private onMessage(channel: string, message: string): void {
    if (!channel.startsWith(this.prefix)) return;
    const tenantId = channel.slice(this.prefix.length);
    let event: TenantEvent;
    try {
      event = tenantEvent.parse(JSON.parse(message));
    } catch (thrown) {
      this.logger.warn({ err: toError(thrown), channel }, 'dropped a malformed tenant event');
      return;
    }
    this.handler(tenantId, event);
  }
}
