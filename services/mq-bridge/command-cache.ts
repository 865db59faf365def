// smart-home-cache (seed 000 §1.3): open commands in Redis, keyed by the request UUID, with a
// reply deadline and a retention TTL. Settling is one Lua script, so a reply, a duplicate reply
// and the timeout check race safely across replicas: exactly one of them decides the outcome, and
// that one also publishes the tenant's event.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { TenantEventPublisher } from '../core/tenant-events.js';
import type { Service } from './domain.js';

const CREATE_LUA = readFileSync(new URL('./lua/command-create.lua', import.meta.url), 'utf8');
const SETTLE_LUA = readFileSync(new URL('./lua/command-settle.lua', import.meta.url), 'utf8');
const SWEEP_LUA = readFileSync(new URL('./lua/command-sweep.lua', import.meta.url), 'utf8');

type CacheRedis = Redis & {
  hubCommandCreate(key: string, deadlines: string, tenant: string, service: string, deadlineMs: number, retentionMs: number, partner: string, id: string): Promise<[number, number]>;
  hubCommandSettle(key: string, deadlines: string, outcome: string, reason: string, partner: string, service: string, id: string, events: string, at: string): Promise<[SettleResult, number, number, string, string]>;
  hubCommandSweep(deadlines: string, keyPrefix: string, limit: number, events: string, at: string): Promise<string[]>;
};

export type CommandStatus = 'pending' | 'opened' | 'failed' | 'timeout';
export type SettleResult = 'settled' | 'unknown' | 'mismatched_partner' | 'mismatched_service' | 'duplicate' | 'late' | 'early';

export interface CommandRecord {
  commandId: string;
  tenantId: string;
  service: Service;
  /** The partner expected to answer. */
  partner: string;
  status: CommandStatus;
  reason?: string;
  createdAt: Date;
  deadline: Date;
  completedAt?: Date;
}

export interface Settled {
  result: SettleResult;
  /** Milliseconds from creation to settling, on Redis's clock (0 when unknown). */
  elapsedMs: number;
  /** The command's tenant and service ('' when unknown). */
  tenantId: string;
  service: Service | '';
}

export class CommandCache {
  private readonly redis: CacheRedis;

  /** Tenant event channels (TenantEventPublisher's): settling publishes the tenant's result there. */
  private readonly eventsPrefix: string;

  constructor(
    redis: Redis,
    private readonly keyPrefix: string,
  ) {
    this.eventsPrefix = new TenantEventPublisher(redis, keyPrefix).channel('');
    if (!('hubCommandCreate' in redis)) {
      redis.defineCommand('hubCommandCreate', { numberOfKeys: 2, lua: CREATE_LUA });
      redis.defineCommand('hubCommandSettle', { numberOfKeys: 2, lua: SETTLE_LUA });
      redis.defineCommand('hubCommandSweep', { numberOfKeys: 1, lua: SWEEP_LUA });
    }
    this.redis = redis as CacheRedis;
  }

  key(commandId: string): string {
    return `${this.keyPrefix}smart-home-cache:${commandId}`;
  }

  /** Deadlines of pending commands, swept for timeouts. */
  get deadlines(): string {
    return `${this.keyPrefix}smart-home-cache-deadlines`;
  }

  async create(o: { commandId: string; tenantId: string; service: Service; partner: string; ttlMs: number; retentionMs: number }): Promise<{ createdAt: Date; deadline: Date }> {
    const [created, deadline] = await this.redis.hubCommandCreate(
      this.key(o.commandId), this.deadlines, o.tenantId, o.service, o.ttlMs, Math.max(o.retentionMs, o.ttlMs + 1_000), o.partner, o.commandId,
    );
    return { createdAt: new Date(Number(created)), deadline: new Date(Number(deadline)) };
  }

  /**
   * Records a partner's outcome (only from the partner asked, for the command's service), or
   * (`timeout`) times the command out if its deadline has passed, and publishes the tenant's
   * `command.result` event when this call decides the outcome. One round trip, atomic.
   */
  async settle(
    commandId: string,
    outcome: 'opened' | 'failed' | 'timeout',
    o: { reason?: string; partner?: string; service?: Service } = {},
  ): Promise<Settled> {
    const [result, created, now, tenantId, service] = await this.redis.hubCommandSettle(
      this.key(commandId), this.deadlines, outcome, o.reason ?? '', o.partner ?? '', o.service ?? '', commandId,
      this.eventsPrefix, new Date().toISOString(),
    );
    return { result, elapsedMs: created > 0 ? Number(now) - Number(created) : 0, tenantId, service: service as Service | '' };
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

  /**
   * Times out every pending command past its deadline (at most `limit`), publishing each tenant's
   * `command.result` event; returns those timed out now.
   */
  async sweep(limit = 500): Promise<{ commandId: string; tenantId: string; service: Service }[]> {
    const flat = await this.redis.hubCommandSweep(this.deadlines, this.key(''), limit, this.eventsPrefix, new Date().toISOString());
    const out: { commandId: string; tenantId: string; service: Service }[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3)
      out.push({ commandId: flat[i] as string, tenantId: flat[i + 1] as string, service: flat[i + 2] as Service });
    return out;
  }

  /** Drops a command whose publish failed, so that it never reads as pending. */
  async discard(commandId: string): Promise<void> {
    await this.redis.multi().del(this.key(commandId)).zrem(this.deadlines, commandId).exec();
  }
}
