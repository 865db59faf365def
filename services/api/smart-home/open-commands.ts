// Opening a door or barrier: the command is recorded in PostgreSQL with a reply
// deadline and cached in smart-home-cache (Redis), published with a broker confirm, and the tenant
// gets its id at once. The result reaches the tenant's WebSockets from whoever decides it (the
// bridge on the reply, or a sweep here on the deadline); reads take the cache first and PostgreSQL
// when the cache has no outcome, so a command Redis lost still reads as what it is.
import { randomUUID } from 'node:crypto';
import { toError } from '../../core/errors.js';
import { sleep } from '../../core/sleep.js';
import type { Logger } from '../../core/logger.js';
import type { CommandCache } from '../../domains/smart-home/command-cache.js';
import type { CommandPush } from '../../domains/smart-home/command-push.js';
import type { CommandRecord } from '../../domains/smart-home/command-state.js';
import type { CommandStore } from '../../domains/smart-home/command-store.js';
import type { Service } from '../../domains/smart-home/domain.js';
import { buildCommand } from '../../contracts/smart-home-messages.js';
import type { SmartHomeMetrics } from '../../domains/smart-home/metrics.js';
import type { CommandPublisher } from '../../domains/smart-home/publisher.js';

interface OpenTarget {
  service: Service;
  tenantId: string;
  partnerRef: string;
  partner: string;
  commandQueue: string;
}

/**
 * How often each replica sweeps for timed-out commands: a timeout is reported at most this late.
 * One sweep is one indexed UPDATE whatever the load (a partial index holds only pending commands),
 * where a timer per command cost a call per command (measured: 9,000 calls for 5,000 opens at 500/s).
 */
const SWEEP_MS = 250;
/** Results whose push was lost (Redis down, a process killed) are pushed again every 4th sweep (~1 s). */
const REPUSH_EVERY = 4;
/** Expired commands are deleted every 40th sweep (~10 s), at most 10,000 a time (1,000/s per replica). */
const CLEANUP_EVERY = 40;
const CLEANUP_LIMIT = 10_000;

export class OpenCommands {
  private readonly stopSweeping = new AbortController();
  private sweeping: Promise<void> | undefined;
  private sweepFailing = false;

  constructor(
    private readonly d: {
      store: CommandStore;
      cache: CommandCache;
      push: CommandPush;
      publisher: CommandPublisher;
      logger: Logger;
      metrics: SmartHomeMetrics;
      ttlMs: number;
      /** How long a command stays readable (longer than ttlMs). */
      retentionMs: number;
    },
  ) {}

  /**
   * Records, caches and publishes the command; rejects (and forgets it) when PostgreSQL, Redis or
   * the broker fails, so that nothing stays pending for a command that was not sent.
   */
  async open(t: OpenTarget): Promise<{ commandId: string; expiresAt: Date }> {
    const commandId = randomUUID();
    const target = { commandId, tenantId: t.tenantId, service: t.service, partner: t.partner };
    // Both stores at once: the cache's pending entry needs nothing from the record.
    const [stored, cached] = await Promise.allSettled([
      this.d.store.create({ ...target, ttlMs: this.d.ttlMs }),
      this.d.cache.create(target, this.d.ttlMs),
    ]);
    try {
      if (stored.status === 'rejected') throw stored.reason;
      if (cached.status === 'rejected') throw cached.reason;
      const record = stored.value;
      const command = buildCommand({
        type: 'device.open',
        correlationId: commandId,
        service: t.service,
        tenantRef: t.partnerRef,
        createdAt: record.createdAt,
        attempt: 1,
        payload: { expiresAt: record.deadline.toISOString() },
      });
      await this.d.publisher.publish(
        { name: t.partner, commandQueue: t.commandQueue },
        command,
        this.d.ttlMs,
      );
      this.sweeping ??= this.sweepLoop();
      return { commandId, expiresAt: record.deadline };
    } catch (thrown) {
      await Promise.all([
        this.d.cache.discard(commandId).catch(() => undefined),
        // Left behind, the row would only time out; the tenant never learnt its id.
        this.d.store
          .discard(commandId)
          .catch((e: unknown) =>
            this.d.logger.warn(
              { err: toError(e), commandId },
              'unsent command not forgotten; it will time out',
            ),
          ),
      ]);
      throw thrown;
    }
  }

  /**
   * The command as the tenant may see it: an outcome from the cache, else the record in
   * PostgreSQL (a pending command past its deadline is timed out now). Rejects only when neither
   * store can answer.
   */
  async get(commandId: string, tenantId: string): Promise<CommandRecord | undefined> {
    const cached = await this.d.cache.get(commandId).catch((e: unknown) => {
      this.d.logger.debug(
        { err: toError(e), commandId },
        'command cache not readable; reading PostgreSQL',
      );
      return undefined;
    });
    const mine = cached?.tenantId === tenantId ? cached : undefined;
    if (mine && mine.status !== 'pending') {
      this.d.metrics.commandReads.inc({ source: 'cache' });
      return mine;
    }
    let stored: CommandRecord | undefined;
    try {
      stored = await this.d.store.get(commandId, tenantId);
    } catch (thrown) {
      if (!mine) throw thrown;
      this.d.metrics.commandReads.inc({ source: 'cache' });
      return mine;
    }
    this.d.metrics.commandReads.inc({ source: 'database' });
    if (stored?.status !== 'pending' || Date.now() <= stored.deadline.getTime()) return stored;
    const ended = await this.d.store.timeOut(commandId);
    if (!ended) return this.d.store.get(commandId, tenantId);
    this.timedOut(ended);
    await this.d.push.push([ended]);
    return ended;
  }

  /** Starts sweeping for timeouts (also started by the first open on this replica). */
  start(): void {
    this.sweeping ??= this.sweepLoop();
  }

  async close(): Promise<void> {
    this.stopSweeping.abort();
    await this.sweeping;
  }

  private async sweepLoop(): Promise<void> {
    for (let n = 1; await sleep(SWEEP_MS, this.stopSweeping.signal); n++) {
      try {
        await this.sweep(n);
        if (this.sweepFailing) this.d.logger.info('timeout sweep works again');
        this.sweepFailing = false;
      } catch (thrown) {
        if (!this.sweepFailing) {
          this.d.logger.warn(
            { reason: toError(thrown).message },
            'open command timeout sweep failed (PostgreSQL or Redis unreachable); retrying every sweep',
          );
        }
        this.sweepFailing = true;
      }
    }
  }

  private async sweep(n: number): Promise<void> {
    const ended = await this.d.store.timeOutDue(500);
    for (const c of ended) this.timedOut(c);
    await this.d.push.push(ended);
    if (n % REPUSH_EVERY === 0) {
      const due = await this.d.store.claimUnpushed(100);
      if (due.length > 0) {
        this.d.logger.info({ commands: due.length }, 'pushing command results again');
      }
      await this.d.push.push(due);
    }
    if (n % CLEANUP_EVERY === 0) {
      await this.d.store.deleteExpired(this.d.retentionMs, CLEANUP_LIMIT);
    }
  }

  private timedOut(c: CommandRecord): void {
    this.d.logger.warn(
      { commandId: c.commandId, correlationId: c.commandId, service: c.service },
      'open command timed out: no partner reply',
    );
  }
}
