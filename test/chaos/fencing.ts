// What a worker cut off by a partition wrote to the work tables, as PostgreSQL saw it: a trigger on
// every table with leases records each row its connections changed (they come from the pod's own
// address in the run's bridge subnet, netns.ts), with the row's lease as it stood at that moment.
// A write the lease contract forbids — an outcome or a renewal after the writer's lease lapsed, a
// claim of a row another worker held under a live lease, any change to a row another worker held —
// is a stale write, which fencing must have refused. Writes the database refused (a fenced UPDATE
// that matched nothing) leave no trace, as they change nothing.
import type { Db } from '../../services/core/db.js';

export const AUDIT_TABLE = 'chaos_isolated_writes';

/**
 * Work tables whose rows a partner's reply finishes whoever holds them (mq-bridge applies a
 * smart-home partner's answer to its request in any state, requests.ts applySubscriptionReply):
 * a change to such a row held by another worker is that reply, not a stale write.
 */
const FINISHED_BY_REPLIES = new Set(['smart_home_requests']);

export interface IsolatedWrite {
  at: Date;
  client: string;
  tbl: string;
  row_id: string;
  old_status: number;
  new_status: number;
  old_locked_by: string | null;
  new_locked_by: string | null;
  /** The row's lease had not expired when the statement started. */
  lease_valid: boolean;
  /** The row was new, or in progress under an expired lease: anyone may claim it. */
  claimable: boolean;
}

/** Work tables: every table with the engine's lease columns. */
export async function workTables(db: Db): Promise<string[]> {
  const rows = await db('information_schema.columns')
    .where({ table_schema: 'public', column_name: 'locked_by' })
    .select('table_name');
  return rows.map((r: { table_name: string }) => r.table_name).sort();
}

/** Installs the trigger on every work table; only connections from `subnet` (but `hostAddress`) are recorded. */
export async function installWriteAudit(
  db: Db,
  tables: readonly string[],
  subnet: string,
  hostAddress: string,
): Promise<void> {
  // Inlined in the function body (no bind parameters there): checked to be an address and a CIDR.
  if (!/^[\d.]+\/\d+$/.test(subnet) || !/^[\d.]+$/.test(hostAddress)) {
    throw new Error(`not an IPv4 subnet and address: ${subnet} ${hostAddress}`);
  }
  await db.raw(`create table if not exists ${AUDIT_TABLE} (
    seq bigserial primary key, at timestamptz not null default clock_timestamp(), client inet not null, tbl text not null,
    row_id text not null, old_status int, new_status int, old_locked_by text, new_locked_by text,
    lease_valid boolean not null, claimable boolean not null)`);
  await db.raw(`create or replace function chaos_note_isolated_write() returns trigger language plpgsql as $$
    begin
      if inet_client_addr() <<= inet '${subnet}' and inet_client_addr() <> inet '${hostAddress}' then
        insert into ${AUDIT_TABLE} (client, tbl, row_id, old_status, new_status, old_locked_by, new_locked_by, lease_valid, claimable)
        values (inet_client_addr(), tg_table_name, old.id::text, old.status, new.status, old.locked_by, new.locked_by,
                coalesce(old.locked_until > statement_timestamp(), false),
                old.status = 0 or (old.status = 1 and coalesce(old.locked_until < statement_timestamp(), true)));
      end if;
      return new;
    end $$`);
  for (const t of tables) {
    await db.raw(
      `create or replace trigger chaos_isolated_write before update on ?? for each row execute function chaos_note_isolated_write()`,
      [t],
    );
  }
}

/** The writes of the pod at `address` from `since` on, oldest first. */
export async function isolatedWrites(
  db: Db,
  address: string,
  since: Date,
): Promise<IsolatedWrite[]> {
  return db(AUDIT_TABLE)
    .where('client', address)
    .andWhere('at', '>=', since)
    .orderBy('seq') as Promise<IsolatedWrite[]>;
}

/** Why a write of the pod `pod` (owners are `<pod>/<reconciler>/<slot>`) broke the lease contract; undefined when it did not. */
export function staleWrite(w: IsolatedWrite, pod: string): string | undefined {
  const mine = (owner: string | null) => owner !== null && owner.startsWith(`${pod}/`);
  const at = `${w.tbl} ${w.row_id} at ${w.at.toISOString().slice(11, 23)}`;
  if (mine(w.new_locked_by) && w.new_status === 1 && !mine(w.old_locked_by)) {
    return w.claimable
      ? undefined
      : `${at}: claimed it while ${w.old_locked_by ?? 'another worker'} held it under a live lease`;
  }
  if (mine(w.old_locked_by)) {
    if (w.lease_valid || (w.claimable && mine(w.new_locked_by) && w.new_status === 1)) {
      return undefined;
    }
    // Giving a row back (status new, no owner) writes no result: allowed after the lease, too.
    if (w.new_status === 0 && w.new_locked_by === null) return undefined;
    return `${at}: wrote status ${w.new_status} after its lease had lapsed`;
  }
  if (w.old_locked_by !== null && w.lease_valid && !FINISHED_BY_REPLIES.has(w.tbl)) {
    return `${at}: changed it while ${w.old_locked_by} held it`;
  }
  return undefined;
}

/** The first claim of the pod after `since` (it works again), or undefined. */
export function firstClaim(
  writes: readonly IsolatedWrite[],
  pod: string,
  since: number,
): IsolatedWrite | undefined {
  return writes.find(
    (w) =>
      w.at.getTime() >= since &&
      w.new_status === 1 &&
      w.new_locked_by?.startsWith(`${pod}/`) &&
      w.claimable,
  );
}
