// smart-home-cache: open commands in Redis, keyed by the request UUID and kept for
// the result's retention. The fast path: a finished command is read from here, and its outcome is
// written here together with the tenant's `command.result` event (one Lua script). The record of
// each command and the decision of its outcome are in PostgreSQL (command-store.ts), so losing this
// cache loses no command.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { TenantEventPublisher } from '../../core/tenant-events.js';
import { commandResultEvent, type CommandRecord, type CommandStatus } from './command-state.js';
import type { Service } from './domain.js';

const RESULT_LUA = readFileSync(new URL('./lua/command-result.lua', import.meta.url), 'utf8');

type CacheRedis = Redis & {
  hubCommandResult(key: string, ...args: (string | number)[]): Promise<number>;
};

export class CommandCache {
  private readonly redis: CacheRedis;

  /** Tenant event channels (TenantEventPublisher's): a result is published there. */
  private readonly eventsPrefix: string;

  /**
   * @param retentionMs how long a command stays readable after it was created (longer than its
   *   reply deadline).
   */
  constructor(
    redis: Redis,
    private readonly keyPrefix: string,
    private readonly retentionMs: number,
  ) {
    this.eventsPrefix = new TenantEventPublisher(redis, keyPrefix).channel('');
    if (!('hubCommandResult' in redis)) {
      redis.defineCommand('hubCommandResult', { numberOfKeys: 1, lua: RESULT_LUA });
    }
    this.redis = redis as CacheRedis;
  }

  key(commandId: string): string {
    return `${this.keyPrefix}smart-home-cache:${commandId}`;
  }

  /** The end of the command's retention (unix ms); `createdAt` on this process's clock will do. */
  private expiresAt(createdAtMs: number): number {
    return createdAtMs + this.retentionMs;
  }

  /**
   * Caches a command about to be sent as pending, with its times on this process's clock: the
   * record's times are PostgreSQL's, and arrive with the outcome (publishResult). Reads of a
   * pending command go to PostgreSQL, so these approximate times are for operators only.
   */
  async create(
    c: Pick<CommandRecord, 'commandId' | 'tenantId' | 'service' | 'partner'>,
    ttlMs: number,
  ): Promise<void> {
    const key = this.key(c.commandId);
    const now = Date.now();
    const replies = await this.redis
      .multi()
      .hset(key, {
        tenant: c.tenantId,
        service: c.service,
        partner: c.partner,
        status: 'pending',
        createdAt: now,
        deadline: now + ttlMs,
      })
      .pexpireat(key, this.expiresAt(now))
      .exec();
    const failed = replies?.find(([err]) => err)?.[0];
    if (failed) throw failed;
  }

  /**
   * Writes the command's outcome and publishes the tenant's `command.result`, unless the cache
   * already holds that outcome (it was pushed before). Resolves true when the event went out.
   */
  async publishResult(c: CommandRecord): Promise<boolean> {
    const event = commandResultEvent(c);
    const completedAtMs = Date.parse(event.at);
    const published = await this.redis.hubCommandResult(
      this.key(c.commandId),
      event.status,
      c.reason ?? '',
      c.tenantId,
      c.service,
      c.partner,
      c.createdAt.getTime(),
      c.deadline.getTime(),
      completedAtMs,
      this.expiresAt(c.createdAt.getTime()),
      this.eventsPrefix,
      JSON.stringify(event),
    );
    return published === 1;
  }

  async get(commandId: string): Promise<CommandRecord | undefined> {
    const h = await this.redis.hgetall(this.key(commandId));
    if (!h.status || !h.tenant || !h.service) return undefined;
    return {
      commandId,
      tenantId: h.tenant,
      service: h.service as Service,
      partner: h.partner ?? '',
      status: h.status as CommandStatus,
      reason: h.reason || undefined,
      createdAt: new Date(Number(h.createdAt)),
      deadline: new Date(Number(h.deadline)),
      completedAt: h.completedAt ? new Date(Number(h.completedAt)) : undefined,
    };
  }

  /** Drops a command whose publish failed, so that it never reads as pending. */
  async discard(commandId: string): Promise<void> {
    await this.redis.del(this.key(commandId));
  }
}
