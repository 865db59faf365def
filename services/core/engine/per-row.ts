// The shape of a handler that works through its claimed rows one at a time: each row handled in
// turn, the rows not yet started handed back when shutdown runs out of patience, and a row's error
// settled as a retry or a failure (with a hook for what follows a permanent failure) before the
// next row starts.
import type { Knex } from 'knex';
import { toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { FailedOutcome, Outcome, WorkRow, WorkTable } from './work-table.js';

export interface PerRow<R extends WorkRow> {
  /** Handles one row and records its outcome; a throw is settled by `settle` (else settleError). */
  handle(row: R, owner: string, signal: AbortSignal): Promise<void>;
  /**
   * Writes what follows from a row failing for good (the order usually fails with it), in the
   * transaction that marks the row failed; called only while this worker still held the row.
   */
  onFailed?(row: R, outcome: FailedOutcome, trx: Knex.Transaction): Promise<void>;
  /** Records a row's error itself instead of WorkTable.settleError; returns the outcome it chose. */
  settle?(row: R, owner: string, error: Error): Promise<Outcome | undefined>;
  /** The warning logged when a row's step throws (with the row's description, attempt and outcome). */
  warning?: string;
  /** What to log about a row. */
  describe?(row: R): Record<string, unknown>;
}

/** Works through `batch` one row at a time (see PerRow); resolves once every row is settled or released. */
export async function eachRow<R extends WorkRow>(
  table: WorkTable,
  logger: Logger,
  o: PerRow<R>,
  batch: readonly R[],
  owner: string,
  signal: AbortSignal,
): Promise<void> {
  for (const [i, row] of batch.entries()) {
    if (signal.aborted) {
      await table.release(
        batch.slice(i).map((r) => r.id),
        owner,
      );
      return;
    }
    try {
      await o.handle(row, owner, signal);
    } catch (thrown) {
      const err = toError(thrown);
      const outcome = o.settle
        ? await o.settle(row, owner, err)
        : (
            await table.settleError(
              [row],
              owner,
              err,
              o.onFailed &&
                (async ([failed], trx) => {
                  if (failed) await o.onFailed?.(row, failed, trx);
                }),
            )
          )[0];
      if (o.warning) {
        logger.warn(
          {
            err,
            ...o.describe?.(row),
            attempt: row.attempts,
            outcome: outcome?.kind,
            reason: outcome?.reason,
          },
          o.warning,
        );
      }
    }
  }
}

/** A reconciler handler that works through each claimed batch one row at a time (see PerRow). */
export function perRow<R extends WorkRow>(table: WorkTable, logger: Logger, o: PerRow<R>) {
  const log = logger.child({ reconciler: table.reconciler });
  return (batch: R[], owner: string, signal: AbortSignal): Promise<void> =>
    eachRow(table, log, o, batch, owner, signal);
}
