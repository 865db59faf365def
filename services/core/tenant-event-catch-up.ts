// Re-delivery of tenant events after a replica's Redis subscription was lost: pub/sub keeps nothing
// for a subscriber that is away, so once it is back the events of its tenants from the time it was
// away are read back from where they are recorded (PostgreSQL, a source per event type) and handed
// to this replica's sockets. Delivery is therefore at least once; events carry a stable id.
import type { Logger } from './logger.js';
import type { AnyTenantEvent, TenantEventEnvelope, TenantEventHandler } from './tenant-events.js';

export interface TenantEventFor<E extends TenantEventEnvelope = AnyTenantEvent> {
  tenantId: string;
  event: E;
}

/** Where one type of tenant event is recorded, read back by tenant. */
export interface TenantEventSource<E extends TenantEventEnvelope = AnyTenantEvent> {
  /** The `type` of the events it yields (for logs and metrics). */
  type: E['type'];
  /**
   * Events of `tenants` from the last `lookbackMs` (the database's clock, so no clock of a replica
   * matters), at most `limit`, the most recent kept when there are more, in the order they happened.
   */
  recent(
    tenants: readonly string[],
    lookbackMs: number,
    limit: number,
  ): Promise<TenantEventFor<E>[]>;
}

/**
 * How far before the loss was noticed to look back. An event published just before Redis died may
 * still have been in its send buffer to this replica, and a failed push is decided on the database's
 * clock: a few seconds cover both (a loss is noticed within milliseconds of the socket closing).
 */
export const CATCH_UP_MARGIN_MS = 5_000;
/**
 * Never further back than this: the sources keep their events for minutes (open command results 15
 * by default), and a client away for longer reads state over REST after its next `ready`.
 */
export const MAX_CATCH_UP_MS = 60 * 60_000;
/** Tenants per query: one `tenant_id = any(…)` index scan each, whatever the replica holds. */
export const TENANTS_PER_QUERY = 500;
/** Events per query and type. Beyond it the oldest are left to the clients' REST reads (and logged). */
export const EVENTS_PER_QUERY = 1_000;

/** The window to re-deliver after a loss that began `lostForMs` ago. */
export function catchUpWindowMs(lostForMs: number): number {
  return Math.min(Math.ceil(Math.max(0, lostForMs)) + CATCH_UP_MARGIN_MS, MAX_CATCH_UP_MS);
}

interface CatchUpDeps<E extends TenantEventEnvelope = AnyTenantEvent> {
  deliver: TenantEventHandler<E>;
  logger: Logger;
  /** Counts re-delivered events by type. */
  redelivered(type: string, n: number): void;
}

export class TenantEventCatchUp<E extends TenantEventEnvelope = AnyTenantEvent> {
  private readonly sources: TenantEventSource<E>[] = [];

  constructor(private readonly d: CatchUpDeps<E>) {}

  add(source: TenantEventSource<E>): void {
    this.sources.push(source);
  }

  /**
   * Re-delivers every source's events of `tenants` since the loss began, minus the margin, and logs
   * one line. Rejects when a source cannot be read (the caller retries the whole; a repeat is
   * harmless, as a client de-duplicates by the event's id).
   */
  async run(tenants: readonly string[], lostForMs: number): Promise<void> {
    const lookbackMs = catchUpWindowMs(lostForMs);
    const redelivered: Record<string, number> = {};
    const truncated: string[] = [];
    for (const source of tenants.length > 0 ? this.sources : []) {
      let n = 0;
      for (let i = 0; i < tenants.length; i += TENANTS_PER_QUERY) {
        const events = await source.recent(
          tenants.slice(i, i + TENANTS_PER_QUERY),
          lookbackMs,
          EVENTS_PER_QUERY,
        );
        if (events.length >= EVENTS_PER_QUERY && !truncated.includes(source.type)) {
          truncated.push(source.type);
        }
        for (const e of events) this.d.deliver(e.tenantId, e.event);
        n += events.length;
      }
      redelivered[source.type] = n;
      this.d.redelivered(source.type, n);
    }
    this.d.logger.info(
      {
        tenants: tenants.length,
        lostForMs: Math.round(lostForMs),
        lookbackMs,
        redelivered,
        ...(truncated.length > 0 ? { truncated } : {}),
      },
      'tenant event subscription restored; events of the time it was lost re-delivered from PostgreSQL',
    );
  }
}
