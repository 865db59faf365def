// Group commit: concurrent callers hand in one row each, and a writer stores the rows queued at that
// moment with one statement and one commit, then answers every caller. Nothing waits on a timer:
// a row that arrives while no write is running goes out at the end of the current event-loop turn
// (with whatever else arrived in that turn), and rows that arrive while `maxInFlight` writes run
// wait for the next free one, so batches grow with the load and an idle service adds no latency.
//
// A failed batch never answers for rows it did not fail: unless `isBatchWide(err)` says the error
// holds for every row (the database is unreachable), each row is written again on its own, and
// only the rows that fail alone get the error.
import { toError } from './errors.js';

export interface GroupCommitOptions {
  /** Most rows in one statement. */
  maxBatch: number;
  /** Most rows waiting for a write; past it submit() rejects with GroupCommitFullError at once. */
  maxQueued: number;
  /** Writes running at once (each holds one database connection). */
  maxInFlight: number;
}

/** The write: results in the order of `rows`, one per row. */
export type BatchWriter<Row, Result> = (rows: readonly Row[]) => Promise<readonly Result[]>;

interface GroupCommitHooks {
  /** After each write: the rows it carried and how long it took. */
  onBatch?: (rows: number, ms: number) => void;
  /** True when an error fails every row alike, so that writing them one by one is pointless. */
  isBatchWide?: (err: Error) => boolean;
}

/**
 * For each row of a batch, whether it is the first with its key. A key repeated within one batch (a
 * redelivery, a duplicate reply) is written once, and its repeats are answered as repeats, as if
 * the rows had come one by one.
 */
export function firstOfEachKey<Row>(rows: readonly Row[], key: (row: Row) => string): boolean[] {
  const seen = new Set<string>();
  return rows.map((row) => {
    const k = key(row);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export class GroupCommitFullError extends Error {
  constructor(readonly queued: number) {
    super(`${queued} rows already wait for a write`);
    this.name = 'GroupCommitFullError';
  }
}

interface Waiting<Row, Result> {
  row: Row;
  resolve: (r: Result) => void;
  reject: (e: Error) => void;
}

export class GroupCommit<Row, Result> {
  private queue: Waiting<Row, Result>[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly write: BatchWriter<Row, Result>,
    private readonly options: GroupCommitOptions,
    private readonly hooks: GroupCommitHooks = {},
  ) {
    if (options.maxBatch < 1 || options.maxInFlight < 1 || options.maxQueued < 1) {
      throw new Error('group commit limits must be at least 1');
    }
  }

  /** Rows waiting for a write (not counting those being written). */
  get queued(): number {
    return this.queue.length;
  }

  /** Resolves with the row's result once the statement that carried it has committed. */
  submit(row: Row): Promise<Result> {
    if (this.queue.length >= this.options.maxQueued) {
      return Promise.reject(new GroupCommitFullError(this.queue.length));
    }
    return new Promise<Result>((resolve, reject) => {
      this.queue.push({ row, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.options.maxInFlight) return;
    this.scheduled = true;
    // The end of this turn: requests parsed from the same socket reads join the same batch.
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.inFlight++;
      void this.run(batch).finally(() => {
        this.inFlight--;
        if (this.queue.length > 0) this.pump();
      });
    }
  }

  private async checkedWrite(rows: Row[]): Promise<readonly Result[]> {
    const results = await this.write(rows);
    if (results.length !== rows.length) {
      throw new Error(`a batch write returned ${results.length} results for ${rows.length} rows`);
    }
    return results;
  }

  private async run(batch: Waiting<Row, Result>[]): Promise<void> {
    const started = performance.now();
    try {
      const results = await this.checkedWrite(batch.map((w) => w.row));
      batch.forEach((w, i) => w.resolve(results[i] as Result));
    } catch (thrown) {
      const err = toError(thrown);
      if (batch.length === 1 || this.hooks.isBatchWide?.(err)) {
        for (const w of batch) w.reject(err);
      } else {
        // Rows alone, one after the other: a single bad row fails only its own caller.
        for (const w of batch) {
          try {
            const [result] = await this.checkedWrite([w.row]);
            w.resolve(result as Result);
          } catch (alone) {
            w.reject(toError(alone));
          }
        }
      }
    } finally {
      this.hooks.onBatch?.(batch.length, performance.now() - started);
    }
  }
}
