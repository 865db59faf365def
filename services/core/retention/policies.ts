// What the daily purge deletes, table by table: finished work rows (done, failed) past their age,
// never a row still pending or in progress, nor one the code still reads (see each `purgeable`).
// Pure: the statements are built here and run by purge.ts.

/** Tables the purge may be configured for (RETENTION_TABLE_DAYS names them). */
export const RETENTION_TABLES = [
  'allio_webhook',
  'allio_tasks',
  'smart_home_requests',
  'kitchen_warehouse_events',
  'kitchen_outbox',
  'periodic_runs',
  'dead_letters',
] as const;
export type RetentionTable = (typeof RETENTION_TABLES)[number];

/**
 * Days a table keeps its finished rows at the least, whatever the configuration says, because the
 * code relies on them for that long.
 */
const FLOOR_DAYS: Partial<Record<RetentionTable, number>> = {
  // Warehouse webhooks are de-duplicated by their Standard Webhooks id (a stock delta applied twice
  // would be wrong); senders retry for a few days (Svix: ~1.5 days), so a week is kept at least.
  kitchen_warehouse_events: 7,
  // The hourly 1C export re-inserts the run rows of up to KITCHEN_ONEC_CATCHUP_HOURS (at most 31
  // days) back; a purged row inside that window would be exported again.
  periodic_runs: 32,
};

interface RetentionSettings {
  /** Days done rows are kept. */
  doneDays: number;
  /** Days failed rows (and dead letters nobody replayed) are kept, for investigation and replay. */
  failedDays: number;
  /** Per-table days for done rows, overriding doneDays. */
  tableDays: Partial<Record<RetentionTable, number>>;
}

/** One DELETE family: rows of `table` matching `where` whose `updated_at` is older than `days`. */
export interface PurgeRule {
  table: RetentionTable;
  /** done or failed: a label of the log line, not of the metric. */
  kind: 'done' | 'failed';
  /** Condition on the row itself (alias t); re-checked by the DELETE on the row it locks. */
  where: string;
  /** Extra condition that reads other rows (alias t): a finished row not meeting it is still needed. */
  purgeable?: string;
  days: number;
}

interface TablePolicy {
  table: RetentionTable;
  done: string;
  failed: string;
  purgeable?: string;
}

const POLICIES: readonly TablePolicy[] = [
  {
    table: 'allio_webhook',
    done: 't.status = 2',
    failed: 't.status = 3',
    // The sync worker logs a task with its webhook's request id: kept while a task it planned is open.
    purgeable:
      'not exists (select 1 from allio_tasks k where k.webhook_id = t.id and k.status in (0, 1))',
  },
  // Pending duplicates are checked against open tasks only (status 0); finished ones are history.
  { table: 'allio_tasks', done: 't.status = 2', failed: 't.status = 3' },
  {
    table: 'smart_home_requests',
    done: 't.status = 2',
    failed: 't.status = 3',
    // The latest request of a subscription is what the app shows, what a replay re-sends and what
    // answers a repeated Idempotency-Key: only requests superseded by a newer one go.
    purgeable:
      'exists (select 1 from smart_home_requests n where n.subscription_id = t.subscription_id and n.id > t.id)',
  },
  { table: 'kitchen_warehouse_events', done: 't.status = 2', failed: 't.status = 3' },
  { table: 'kitchen_outbox', done: 't.status = 2', failed: 't.status = 3' },
  { table: 'periodic_runs', done: 't.status = 2', failed: 't.status = 3' },
  // Replayed dead letters are done; one nobody replayed (or whose replay failed) is kept as long as a failure.
  { table: 'dead_letters', done: 't.status = 2', failed: '(t.status is null or t.status = 3)' },
];

/** The rules of one run, in order: each table's done rows, then its failed rows. */
export function purgeRules(s: RetentionSettings): PurgeRule[] {
  return POLICIES.flatMap((p) => {
    const floor = FLOOR_DAYS[p.table] ?? 1;
    const done = Math.max(s.tableDays[p.table] ?? s.doneDays, floor);
    const failed = Math.max(s.failedDays, floor);
    return [
      { table: p.table, kind: 'done' as const, where: p.done, purgeable: p.purgeable, days: done },
      {
        table: p.table,
        kind: 'failed' as const,
        where: p.failed,
        purgeable: p.purgeable,
        days: failed,
      },
    ];
  });
}

/**
 * One batch: up to `limit` of the oldest matching rows, skipping rows another transaction holds.
 * The outer condition repeats the row's own state and age, so a row replayed between the select and
 * the delete (its status back to 0) is left alone. Bindings: days, limit, days.
 */
export function purgeBatchSql(r: PurgeRule): string {
  const age = `t.updated_at < now() - make_interval(days => ?)`;
  return `delete from ${r.table} t
     where t.id = any(array(select t.id from ${r.table} t
                             where ${r.where} and ${age}${r.purgeable ? ` and ${r.purgeable}` : ''}
                             order by t.updated_at limit ? for update skip locked))
       and ${r.where} and ${age}`;
}

/** `name=days,name=days` (RETENTION_TABLE_DAYS) into per-table days, or the problems found. */
export function parseTableDays(
  text: string,
):
  { ok: true; value: Partial<Record<RetentionTable, number>> } | { ok: false; problems: string[] } {
  const value: Partial<Record<RetentionTable, number>> = {};
  const problems: string[] = [];
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')) {
    const m = /^([a-z_]+)\s*=\s*(\d{1,4})$/.exec(part);
    const table = m?.[1] as RetentionTable | undefined;
    if (!m || !table) {
      problems.push(`"${part.slice(0, 60)}" is not table=days`);
      continue;
    }
    if (!RETENTION_TABLES.includes(table)) {
      problems.push(`${table} is not a purged table (${RETENTION_TABLES.join(', ')})`);
      continue;
    }
    const days = Number(m[2]);
    const floor = FLOOR_DAYS[table] ?? 1;
    if (days < floor || days > 3650) {
      problems.push(`${table} keeps its rows from ${floor} to 3650 days, not ${days}`);
    } else value[table] = days;
  }
  return problems.length ? { ok: false, problems } : { ok: true, value };
}
