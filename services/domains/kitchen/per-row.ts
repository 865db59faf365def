// The shape every kitchen reconciler handler shares: rows handled one by one, unstarted rows handed
// back on shutdown, and an error settled as retry or failure, with a hook for the permanent failure.
import { toError } from '../../core/errors.js';
import type { Knex } from 'knex';
import type { FailedOutcome, WorkRow, WorkTable } from '../../core/engine/work-table.js';
import type { Logger } from '../../core/logger.js';

interface PerRow<R extends WorkRow> {
  handle(row: R, owner: string, signal: AbortSignal): Promise<void>;
  /**
   * Writes what follows from a row failing for good (the order usually fails with it), in the
   * transaction that marks the row failed; called only while this worker still held the row.
   */
  onFailed(row: R, outcome: FailedOutcome, trx: Knex.Transaction): Promise<void>;
  /** What to log about a row. */
  describe(row: R): Record<string, unknown>;
}

export function perRow<R extends WorkRow>(table: WorkTable, logger: Logger, o: PerRow<R>) {
  const log = logger.child({ reconciler: table.reconciler });
  return async (batch: R[], owner: string, signal: AbortSignal): Promise<void> => {
    for (const row of batch) {
      if (signal.aborted) {
        await table.release([row.id], owner);
        continue;
      }
      try {
        await o.handle(row, owner, signal);
      } catch (thrown) {
        const err = toError(thrown);
        const [outcome] = await table.settleError([row], owner, err, async ([failed], trx) => {
          if (failed) await o.onFailed(row, failed, trx);
        });
        log.warn({ err, ...o.describe(row), attempt: row.attempts, outcome: outcome?.kind, reason: outcome?.reason }, 'step did not complete');
      }
    }
  };
}
