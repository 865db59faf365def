// Open commands in PostgreSQL (`smart_home_commands`): the record that survives a Redis loss, and the
// one place their outcome is decided. Every decision is a gated UPDATE (`… where status = 'pending'`),
// so a reply, a duplicate reply, the sweeps of several api replicas and a REST read race safely:
// exactly one of them ends each command, and that one owes the tenant its `command.result`.
//
// An open's three writes (the command recorded, its reply applied, its push noted) go through group
// commit (core/group-commit.ts): concurrent opens and replies share one statement and one commit
// each, so the rate of opens is not bounded by one commit per write on the pool's connections.
import type { Knex } from 'knex';
import { isDatabaseUnavailable } from '../../core/errors.js';
import { firstOfEachKey, GroupCommit, type GroupCommitOptions } from '../../core/group-commit.js';
import { replyVerdict, type CommandRecord, type SettleResult } from './command-state.js';
import type { Service } from './domain.js';

export const COMMANDS = 'smart_home_commands';

/**
 * How long the process that decided an outcome has to push it before a sweep pushes it again.
 * A push is one Redis round trip (well under 10 ms), so 5 s only comes into play when that process
 * died or Redis was down; a push twice is harmless (the event carries the command's id).
 */
const PUSH_LEASE = "interval '5 seconds'";

interface CommandRow {
  command_id: string;
  tenant_id: string;
  service: Service;
  partner: string;
  status: CommandRecord['status'];
  reason: string | null;
  created_at: Date;
  deadline: Date;
  completed_at: Date | null;
}

function toRecord(r: CommandRow): CommandRecord {
  return {
    commandId: r.command_id,
    tenantId: r.tenant_id,
    service: r.service,
    partner: r.partner,
    status: r.status,
    reason: r.reason ?? undefined,
    createdAt: r.created_at,
    deadline: r.deadline,
    completedAt: r.completed_at ?? undefined,
  };
}

interface Settled {
  result: SettleResult;
  /** The command as this call left it (absent when unknown). */
  command?: CommandRecord;
  /** Set when this call ended the command, settled or timed out (the reply came late): its result is due to the tenant. */
  ended?: CommandRecord;
}

interface NewCommand {
  commandId: string;
  tenantId: string;
  service: Service;
  partner: string;
  ttlMs: number;
}

interface Outcome {
  commandId: string;
  status: 'opened' | 'failed';
  reason?: string;
  partner: string;
  service: Service;
}

/**
 * Each write's batch: up to 500 rows, two statements at once (two of the pool's connections); a
 * caller past 20,000 waiting rows is refused at once rather than queued without bound.
 */
const BATCHING: GroupCommitOptions = { maxBatch: 500, maxInFlight: 2, maxQueued: 20_000 };
const hooks = { isBatchWide: isDatabaseUnavailable };

export class CommandStore {
  private readonly creates: GroupCommit<NewCommand, CommandRow>;
  private readonly outcomes: GroupCommit<Outcome, CommandRow | undefined>;
  private readonly pushes: GroupCommit<string, undefined>;

  constructor(private readonly db: Knex) {
    this.creates = new GroupCommit((rows) => this.insertCommands(rows), BATCHING, hooks);
    this.outcomes = new GroupCommit((rows) => this.applyOutcomes(rows), BATCHING, hooks);
    this.pushes = new GroupCommit((ids) => this.clearPushDue(ids), BATCHING, hooks);
  }

  /** Records a pending command; its times are PostgreSQL's, shared by every replica. */
  async create(o: NewCommand): Promise<CommandRecord> {
    return toRecord(await this.creates.submit(o));
  }

  /** One INSERT for the batch; each caller gets its own row back (matched by command id). */
  private async insertCommands(rows: readonly NewCommand[]): Promise<CommandRow[]> {
    const { rows: inserted } = await this.db.raw<{ rows: CommandRow[] }>(
      `insert into ${COMMANDS} (command_id, tenant_id, service, partner, deadline)
       select x.command_id, x.tenant_id, x.service, x.partner,
              now() + make_interval(secs => x.ttl_ms::double precision / 1000)
         from jsonb_to_recordset(?::jsonb) as x(command_id uuid, tenant_id text, service text, partner text, ttl_ms bigint)
       returning *`,
      [
        JSON.stringify(
          rows.map((r) => ({
            command_id: r.commandId,
            tenant_id: r.tenantId,
            service: r.service,
            partner: r.partner,
            ttl_ms: r.ttlMs,
          })),
        ),
      ],
    );
    const byId = new Map(inserted.map((r) => [r.command_id, r]));
    return rows.map((r) => {
      const row = byId.get(r.commandId);
      if (!row) throw new Error(`command ${r.commandId} insert returned no row`);
      return row;
    });
  }

  /**
   * The common case of `settle` for the batch, in one gated UPDATE (its conditions are
   * replyVerdict's `apply`). A command that did not change gets undefined, and so does every
   * repeat of a command within the batch after its first (a duplicate reply): each then takes the
   * slow path, which says why.
   */
  private async applyOutcomes(rows: readonly Outcome[]): Promise<(CommandRow | undefined)[]> {
    const first = firstOfEachKey(rows, (r) => r.commandId);
    const { rows: updated } = await this.db.raw<{ rows: CommandRow[] }>(
      `update ${COMMANDS} c
          set status = x.status, reason = x.reason, completed_at = now(), push_due_at = now() + ${PUSH_LEASE}
         from jsonb_to_recordset(?::jsonb) as x(command_id uuid, status text, reason text, partner text, service text)
        where c.command_id = x.command_id and c.status = 'pending' and c.partner = x.partner
          and c.service = x.service and c.deadline >= now()
       returning c.*`,
      [
        JSON.stringify(
          rows
            .filter((_, i) => first[i])
            .map((r) => ({
              command_id: r.commandId,
              status: r.status,
              reason: r.reason ?? null,
              partner: r.partner,
              service: r.service,
            })),
        ),
      ],
    );
    const byId = new Map(updated.map((r) => [r.command_id, r]));
    return rows.map((r, i) => (first[i] ? byId.get(r.commandId) : undefined));
  }

  private async clearPushDue(commandIds: readonly string[]): Promise<undefined[]> {
    await this.db(COMMANDS)
      .whereIn('command_id', [...new Set(commandIds)])
      .whereNot({ status: 'pending' })
      .update({ push_due_at: null });
    return commandIds.map(() => undefined);
  }

  /**
   * Forgets a command that was never sent, whatever its state: a publish that failed slowly may
   * have outlived the deadline, and a sweep timed out a command whose id the tenant never got.
   */
  async discard(commandId: string): Promise<void> {
    await this.db(COMMANDS).where({ command_id: commandId }).delete();
  }

  /** The tenant's command (another tenant's reads as absent). */
  async get(commandId: string, tenantId: string): Promise<CommandRecord | undefined> {
    const row: CommandRow | undefined = await this.db(COMMANDS)
      .where({ command_id: commandId, tenant_id: tenantId })
      .first();
    return row && toRecord(row);
  }

  /**
   * Applies the partner's outcome if `partner` was asked, for this `service`, and the deadline has
   * not passed; otherwise says why nothing changed (a reply past the deadline times the command out).
   */
  async settle(
    commandId: string,
    status: 'opened' | 'failed',
    o: { reason?: string; partner: string; service: Service },
  ): Promise<Settled> {
    // A repeat of a command within one batch takes the slow path even when the batch's first copy
    // did not apply (another partner's reply to it): then it applies on a second try.
    for (let attempt = 1; ; attempt++) {
      const settled = await this.settleOnce(commandId, status, o);
      if (settled !== 'apply') return settled;
      if (attempt === 2) {
        throw new Error(`command ${commandId} changed while its reply was applied; try again`);
      }
    }
  }

  /** One try of `settle`: its answer, or 'apply' when the reply applies but did not (yet). */
  private async settleOnce(
    commandId: string,
    status: 'opened' | 'failed',
    o: { reason?: string; partner: string; service: Service },
  ): Promise<Settled | 'apply'> {
    // The common case, batched with the replies applied at the same moment.
    const row = await this.outcomes.submit({ commandId, status, ...o });
    if (row) return { result: 'settled', command: toRecord(row), ended: toRecord(row) };
    const { rows } = await this.db.raw<{ rows: (CommandRow & { now: Date })[] }>(
      `select *, now() as now from ${COMMANDS} where command_id = ?`,
      [commandId],
    );
    const found = rows[0];
    const command = found && toRecord(found);
    const verdict = replyVerdict(
      command,
      { partner: o.partner, service: o.service },
      found?.now ?? new Date(),
    );
    if (verdict.action === 'ignore') return { result: verdict.result, command };
    if (verdict.action === 'apply') return 'apply';
    const ended = await this.timeOut(commandId);
    return { result: 'late', command: ended ?? command, ended };
  }

  /** Times the command out if it is pending past its deadline; returns it when this call did. */
  async timeOut(commandId: string): Promise<CommandRecord | undefined> {
    const [row]: CommandRow[] = await this.db(COMMANDS)
      .where({ command_id: commandId, status: 'pending' })
      .where('deadline', '<', this.db.fn.now())
      .update({
        status: 'timeout',
        completed_at: this.db.fn.now(),
        push_due_at: this.db.raw(`now() + ${PUSH_LEASE}`),
      })
      .returning('*');
    return row && toRecord(row);
  }

  /** Times out at most `limit` pending commands past their deadline (each by exactly one caller). */
  async timeOutDue(limit: number): Promise<CommandRecord[]> {
    const { rows } = await this.db.raw<{ rows: CommandRow[] }>(
      `update ${COMMANDS} set status = 'timeout', completed_at = now(), push_due_at = now() + ${PUSH_LEASE}
        where command_id in (select command_id from ${COMMANDS} where status = 'pending' and deadline < now()
                              order by deadline limit ? for update skip locked)
          and status = 'pending'
      returning *`,
      [limit],
    );
    return rows.map(toRecord);
  }

  /** Ended commands whose result was not pushed within its lease; each is leased again to this caller. */
  async claimUnpushed(limit: number): Promise<CommandRecord[]> {
    const { rows } = await this.db.raw<{ rows: CommandRow[] }>(
      `update ${COMMANDS} set push_due_at = now() + ${PUSH_LEASE}
        where command_id in (select command_id from ${COMMANDS} where push_due_at <= now()
                              order by push_due_at limit ? for update skip locked)
      returning *`,
      [limit],
    );
    return rows.map(toRecord);
  }

  /**
   * Commands of `tenants` that ended in the last `lookbackMs`, the latest `limit` of them, in the
   * order they ended: what a replica's sockets may have missed while its subscription was away.
   * One scan of smart_home_commands_tenant_ended.
   */
  async endedSince(
    tenants: readonly string[],
    lookbackMs: number,
    limit: number,
  ): Promise<CommandRecord[]> {
    if (tenants.length === 0) return [];
    const rows: CommandRow[] = await this.db(COMMANDS)
      .whereIn('tenant_id', tenants)
      .where(
        'completed_at',
        '>=',
        this.db.raw(`now() - make_interval(secs => ?::double precision / 1000)`, [lookbackMs]),
      )
      .orderBy('completed_at', 'desc')
      .limit(limit);
    return rows.reverse().map(toRecord);
  }

  async markPushed(commandIds: string[]): Promise<void> {
    await Promise.all(commandIds.map((id) => this.pushes.submit(id)));
  }

  /** Deletes at most `limit` ended commands older than `retentionMs` (their results are no longer readable). */
  async deleteExpired(retentionMs: number, limit: number): Promise<number> {
    return this.db(COMMANDS)
      .whereIn(
        'command_id',
        this.db(COMMANDS)
          .select('command_id')
          .whereNot({ status: 'pending' })
          .where(
            'created_at',
            '<',
            this.db.raw(`now() - make_interval(secs => ?::double precision / 1000)`, [retentionMs]),
          )
          .limit(limit),
      )
      .delete();
  }
}
