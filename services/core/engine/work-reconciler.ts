// A reconciler over a durable work table, defined in one place: the table with its lease, attempts
// and backoff, the claim (a filtered batch of due rows, or the domain's own), the handler, the
// heartbeat that renews the leases of the batch in flight, the backlog gauges, the settling of a
// handler that throws, and the NOTIFY that wakes it when rows are inserted.
import type { Knex } from 'knex';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { BackoffPolicy } from './backoff.js';
import type { WorkListener } from './notify.js';
import { Reconciler, type ReconcilerOptions } from './reconciler.js';
import { WorkTable, type Filter, type WorkRow } from './work-table.js';

export interface WorkReconcilerOptions<R extends WorkRow> {
  db: Knex;
  logger: Logger;
  metrics: Metrics;
  /** Names this replica in leases. */
  owner: string;
  /** Wakes the reconciler when the table's rows change; without it the reconciler polls. */
  listener?: WorkListener;
  /** The work table. */
  table: string;
  /** Reconciler name, in metrics, logs and lease owners. */
  name: string;
  leaseMs: number;
  maxAttempts: number;
  backoff?: BackoffPolicy;
  /** See WorkTableOptions.failExhaustedOnClaim. */
  failExhaustedOnClaim?: boolean;
  /** Rows per claim (unless `claim` is given). */
  batch?: number;
  /** Limits the claim (unless `claim` is given) and the backlog gauges to the rows it matches. */
  filter?: Filter;
  /** The domain's own claim over the table, instead of the filtered batch of due rows. */
  claim?(table: WorkTable): (owner: string) => Promise<R[]>;
  /** The handler of a claimed batch, given the table to record outcomes in. */
  handle(table: WorkTable): ReconcilerOptions<R>['handle'];
  /**
   * Renew the leases of the batch in flight (default). Off for work that renews its own lease as
   * it goes.
   */
  renewLeases?: boolean;
  concurrency?: number;
  pollMinMs?: number;
  pollMaxMs?: number;
  statsIntervalMs?: number;
}

export interface WorkReconciler<R extends WorkRow> {
  reconciler: Reconciler<R>;
  table: WorkTable;
}

/**
 * The reconciler and its work table. The claim is built before the handler, so a handler may use
 * what the claim set up. A handler that throws (it should record every outcome itself) has its
 * batch settled as a retry or a failure.
 */
export function defineWorkReconciler<R extends WorkRow>(
  o: WorkReconcilerOptions<R>,
): WorkReconciler<R> {
  const table = new WorkTable(o.db, o.metrics, o.logger, {
    table: o.table,
    reconciler: o.name,
    leaseMs: o.leaseMs,
    maxAttempts: o.maxAttempts,
    backoff: o.backoff,
    failExhaustedOnClaim: o.failExhaustedOnClaim,
  });
  const claim =
    o.claim?.(table) ?? ((owner: string) => table.claim<R>(owner, o.batch ?? 1, o.filter));
  const reconciler = new Reconciler<R>({
    name: o.name,
    owner: o.owner,
    logger: o.logger,
    metrics: o.metrics,
    concurrency: o.concurrency,
    pollMinMs: o.pollMinMs,
    pollMaxMs: o.pollMaxMs,
    statsIntervalMs: o.statsIntervalMs,
    claim,
    handle: o.handle(table),
    onHandlerError: (batch, owner, err) =>
      table.settleError(batch, owner, err).then(() => undefined),
    lease: o.renewLeases === false ? undefined : table.renewal<R>(),
    stats: () => table.stats(o.filter),
  });
  o.listener?.on(o.table, () => reconciler.notify());
  return { reconciler, table };
}
