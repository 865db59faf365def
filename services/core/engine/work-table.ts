// SQL for a durable work table: claiming due rows with leases, and recording outcomes.
// Every work table has the same bookkeeping columns: status (0 new, 1 in progress, 2 done,
// 3 error), attempts, next_attempt_at, locked_by, locked_until, last_error, updated_at.
import type { Knex } from 'knex';
import { classifyError, toError, type Classification } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { retryDelayMs, type BackoffPolicy, DEFAULT_BACKOFF } from './backoff.js';

export const Status = { NEW: 0, IN_PROGRESS: 1, DONE: 2, ERROR: 3 } as const;

export interface WorkRow {
  id: string;
  status: number;
  attempts: number;
  [column: string]: unknown;
}

/** A filter added to the claim: `sql` uses `?` placeholders bound to `bindings`. */
export interface Filter {
  sql: string;
  bindings: readonly Knex.Value[];
}

export interface WorkTableOptions {
  table: string;
  /** Reconciler name used in metrics and logs. */
  reconciler: string;
  leaseMs: number;
  maxAttempts: number;
  backoff?: BackoffPolicy;
  /**
   * Fail rows at claim time once their attempts are used up (their workers kept dying). A domain
   * whose failure must also change other rows turns this off and handles such rows itself.
   */
  failExhaustedOnClaim?: boolean;
}

export type Outcome =
  | { kind: 'retry'; id: string; at: Date; reason: string; error: string }
  | { kind: 'failed'; id: string; reason: string; error: string };

type Executor = Knex | Knex.Transaction;

/** The condition that makes a row claimable: due and new, or in progress under an expired lease. */
export function dueCondition(alias?: string): string {
  const c = alias ? `${alias}.` : '';
  return `((${c}status = 0 and ${c}next_attempt_at <= now()) or (${c}status = 1 and ${c}locked_until < now()))`;
}

/** The SET clause of every claim; binds the owner, then the lease in seconds. */
export const CLAIM_SET =
  'status = 1, attempts = attempts + 1, locked_by = ?, locked_until = now() + make_interval(secs => ?), updated_at = now()';

const DUE = dueCondition();

export class WorkTable {
  readonly table: string;
  readonly reconciler: string;
  private readonly backoff: BackoffPolicy;

  constructor(
    private readonly db: Knex,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    readonly options: WorkTableOptions,
  ) {
    this.table = options.table;
    this.reconciler = options.reconciler;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
  }

  /**
   * Claims up to `limit` due rows in one statement: SKIP LOCKED lets replicas claim side by side,
   * and the lease makes a row claimable again if its owner dies. `id = any(array(…))` keeps the
   * primary-key lookup at every table size; `id in (…)` was planned as a hash semi-join over a
   * sequential scan on mid-size tables (1.4 of 7.4 ms for a 1000-row claim on 20,000 rows).
   * Rows that have already used up their attempts (their owners kept dying mid-work) are failed
   * here instead of being handed out.
   */
  async claim<R extends WorkRow>(owner: string, limit: number, filter?: Filter): Promise<R[]> {
    const where = filter ? `and (${filter.sql})` : '';
    const { rows } = await this.db.raw<{ rows: R[] }>(
      `update ?? set ${CLAIM_SET}
        where id = any(array(select id from ?? where ${DUE} ${where}
                              order by next_attempt_at, id limit ? for update skip locked))
        returning *`,
      [this.table, owner, this.options.leaseMs / 1000, this.table, ...(filter?.bindings ?? []), limit],
    );
    return this.dropExhausted(rows, owner);
  }

  /** Claims with a caller-built statement (batching by group); it must return full rows. */
  async claimRaw<R extends WorkRow>(owner: string, sql: string, bindings: readonly Knex.Value[]): Promise<R[]> {
    const { rows } = await this.db.raw<{ rows: R[] }>(sql, bindings as Knex.Value[]);
    return this.dropExhausted(rows, owner);
  }

  private async dropExhausted<R extends WorkRow>(rows: R[], owner: string): Promise<R[]> {
    if (this.options.failExhaustedOnClaim === false) return rows;
    const exhausted = rows.filter((r) => r.attempts > this.options.maxAttempts);
    if (exhausted.length === 0) return rows;
    await this.fail(
      exhausted.map((r) => r.id),
      owner,
      'lease expired on every attempt (the worker kept dying while handling it)',
    );
    const ids = new Set(exhausted.map((r) => r.id));
    return rows.filter((r) => !ids.has(r.id));
  }

  /** Marks rows done, only where this owner still holds them. Returns the ids updated. */
  async complete(
    ids: readonly string[],
    owner: string,
    executor: Executor = this.db,
    extra: Record<string, Knex.Value> = {},
  ): Promise<string[]> {
    if (ids.length === 0) return [];
    const updated = await executor(this.table)
      .whereIn('id', ids as string[])
      .andWhere({ locked_by: owner, status: Status.IN_PROGRESS })
      .update({
        status: Status.DONE,
        locked_by: null,
        locked_until: null,
        last_error: null,
        updated_at: executor.fn.now(),
        ...extra,
      })
      .returning('id');
    const done = updated.map((r: { id: string }) => String(r.id));
    const count = () =>
      this.metrics.reconcileAttempts.inc(
        { reconciler: this.reconciler, outcome: extra.skip_reason ? 'skipped' : 'done' },
        done.length,
      );
    // Inside a transaction the rows are done only once it commits; count them then.
    if ('executionPromise' in executor) executor.executionPromise.then(count, () => undefined);
    else count();
    if (done.length < ids.length)
      this.logger.warn({ reconciler: this.reconciler, lost: ids.length - done.length }, 'lease lost before completion');
    return done;
  }

  /**
   * Decides retry or failure for each row from the error and the attempts used, and records it.
   * Rows of one batch share the error and usually their attempt count, so they are written in one
   * statement per outcome rather than one per row.
   */
  async settleError(rows: readonly WorkRow[], owner: string, thrown: unknown): Promise<Outcome[]> {
    const error = toError(thrown);
    const classification = classifyError(error);
    const byAttempts = new Map<number, WorkRow[]>();
    for (const row of rows) byAttempts.set(row.attempts, [...(byAttempts.get(row.attempts) ?? []), row]);
    const outcomes: Outcome[] = [];
    const failed: Outcome[] = [];
    for (const group of byAttempts.values()) {
      const first = group[0];
      if (!first) continue;
      const decided = this.decide(first, classification, error);
      const mine = group.map((r) => ({ ...decided, id: r.id }));
      outcomes.push(...mine);
      if (decided.kind === 'retry') await this.retryAt(mine.map((o) => o.id), owner, decided.at, decided.error, decided.reason);
      else failed.push(...mine);
    }
    if (failed.length > 0) await this.fail(failed.map((o) => o.id), owner, describe(error));
    return outcomes;
  }

  /** Pure decision for one row: permanent error or attempts used up fail it, anything else retries. */
  decide(row: WorkRow, c: Classification, error: Error): Outcome {
    const message = describe(error);
    if (!c.retryable) return { kind: 'failed', id: row.id, reason: c.reason, error: message };
    if (row.attempts >= this.options.maxAttempts)
      return { kind: 'failed', id: row.id, reason: 'attempts_exhausted', error: message };
    const delay = retryDelayMs(row.attempts, this.backoff, c.retryAfterMs);
    return { kind: 'retry', id: row.id, at: new Date(Date.now() + delay), reason: c.reason, error: message };
  }

  async retryAt(ids: readonly string[], owner: string, at: Date, error: string, reason = 'unknown'): Promise<void> {
    const n = await this.db(this.table)
      .whereIn('id', ids as string[])
      .andWhere({ locked_by: owner, status: Status.IN_PROGRESS })
      .update({
        status: Status.NEW,
        next_attempt_at: at,
        locked_by: null,
        locked_until: null,
        last_error: error,
        updated_at: this.db.fn.now(),
      });
    this.metrics.reconcileAttempts.inc({ reconciler: this.reconciler, outcome: 'retry' }, n);
    this.metrics.reconcileRetries.inc({ reconciler: this.reconciler, reason }, n);
  }

  async fail(ids: readonly string[], owner: string, error: string): Promise<void> {
    const n = await this.db(this.table)
      .whereIn('id', ids as string[])
      .andWhere({ locked_by: owner, status: Status.IN_PROGRESS })
      .update({
        status: Status.ERROR,
        locked_by: null,
        locked_until: null,
        last_error: error,
        updated_at: this.db.fn.now(),
      });
    this.metrics.reconcileAttempts.inc({ reconciler: this.reconciler, outcome: 'failed' }, n);
    if (n > 0) this.logger.warn({ reconciler: this.reconciler, ids, error }, 'work failed permanently');
  }

  /** Hands rows back untouched (shutdown before the work started): the attempt is not counted. */
  async release(ids: readonly string[], owner: string): Promise<void> {
    if (ids.length === 0) return;
    const n = await this.db(this.table)
      .whereIn('id', ids as string[])
      .andWhere({ locked_by: owner, status: Status.IN_PROGRESS })
      .update({
        status: Status.NEW,
        attempts: this.db.raw('greatest(attempts - 1, 0)'),
        locked_by: null,
        locked_until: null,
        updated_at: this.db.fn.now(),
      });
    this.metrics.reconcileAttempts.inc({ reconciler: this.reconciler, outcome: 'released' }, n);
  }

  /** Backlog size and the age of the oldest due row, for the autoscaling gauges. */
  async stats(filter?: Filter): Promise<{ backlog: number; oldestDueAgeSeconds: number }> {
    const where = filter ? `and (${filter.sql})` : '';
    const { rows } = await this.db.raw<{ rows: { backlog: string; age: string | null }[] }>(
      `select count(*) as backlog, extract(epoch from now() - min(next_attempt_at)) as age
         from ?? where ${DUE} ${where}`,
      [this.table, ...(filter?.bindings ?? [])],
    );
    const row = rows[0];
    return { backlog: Number(row?.backlog ?? 0), oldestDueAgeSeconds: Math.max(0, Number(row?.age ?? 0)) };
  }
}

/** A one-line error description for `last_error`, including the cause chain. */
export function describe(error: Error): string {
  const parts: string[] = [];
  let e: unknown = error;
  for (let i = 0; i < 4 && e instanceof Error; i++) {
    parts.push(`${e.name}: ${e.message}`);
    e = e.cause;
  }
  return parts.join(' <- ').slice(0, 2000);
}

/** Re-queues permanently failed rows (operator replay): fresh attempts, due now. */
export async function replayFailed(
  db: Knex,
  table: string,
  where: (q: Knex.QueryBuilder) => Knex.QueryBuilder,
): Promise<string[]> {
  const rows = await where(db(table).where({ status: Status.ERROR }))
    .update({ status: Status.NEW, attempts: 0, next_attempt_at: db.fn.now(), updated_at: db.fn.now() })
    .returning('id');
  if (rows.length > 0) await db.raw(`select pg_notify('hub_work', current_schema() || '.' || ?)`, [table]);
  return rows.map((r: { id: string }) => String(r.id));
}
