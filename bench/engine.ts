// Engine cost as the work grows: no-op rows claimed and completed per second by our reconcile engine
// (Reconciler + WorkTable) with 10,000 due rows, with 1,000,000 due rows and with 10,000,000 finished
// rows under a working set, against the same claim and complete statements driven by pgbench (no Node
// in between) and against graphile-worker, all on the same PostgreSQL in the same run.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Knex } from 'knex';
import { Logger as GraphileLogger, makeWorkerUtils, run, type TaskList } from 'graphile-worker';
import { createDb, quoteIdent } from '../services/core/db.js';
import { Reconciler } from '../services/core/engine/reconciler.js';
import { WorkTable, idArray, type WorkRow } from '../services/core/engine/work-table.js';
import { migrate } from '../services/core/migrate.js';
import { createMetrics } from '../services/core/metrics.js';
import { DATABASE_URL, benchLogger, fmt, signal, uniqueName, withDeadline } from './support.js';

/*
 * Defaults for our side, picked on this 2-core machine (PostgreSQL 15 on the same host, 20,000
 * jobs, median of 3 runs, jobs/s):
 *
 *   concurrency \ batch     50     100     200     500    1000    2000
 *   1                     19.4k   25.0k   32.0k   45.3k   47.0k   50.8k
 *   2                     25.6k   32.9k   44.6k   60.9k   68.8k   80.2k
 *   4                     29.8k   39.8k   47.7k   62.6k   70.0k   77.8k
 *   8                     31.2k   41.1k   46.8k   59.2k   62.3k   63.7k
 *
 * Each batch costs two statements (claim, complete) whatever its size, so throughput follows the
 * batch; two loops let one loop's complete overlap the other's claim, which is what two cores can
 * use, and more loops only contend. Batch 2000 is faster still but is then a tenth of the whole
 * queue under one lease (ten batches in all), which measures little but the inserts; 1000 is the
 * same fetch size the graphile-worker side uses below, so both sides lock alike.
 */
const OUR_CONCURRENCY = 2;
const OUR_BATCH = 1000;

/*
 * graphile-worker's fastest documented configuration (worker.graphile.org/docs/performance:
 * concurrentJobs 24, maxPoolSize 25, localQueue.size 500, completeJobBatchDelay 0,
 * failJobBatchDelay 0), with the local queue raised to 1000 because that was faster here
 * (median of 3, jobs/s, completeJobBatchDelay 0):
 *
 *   concurrentJobs \ localQueue   500     1000
 *   4                            43.2k   48.3k
 *   8                            42.7k   49.7k
 *   16                           44.5k   48.0k
 *   24                           42.2k   47.6k
 *   48                           41.7k   48.4k
 *
 * Concurrency is noise for no-op jobs, so the documented 24 stays; completeJobBatchDelay 5 ms was
 * no faster than 0 (within 1-2k jobs/s either way).
 */
const GW_CONCURRENCY = 24;
const GW_LOCAL_QUEUE = 1000;
const GW_BATCH_DELAY_MS = 0;

const DEADLINE_MS = 20 * 60_000;
/** Rows per INSERT … SELECT generate_series statement while loading: progress is printed per chunk. */
const LOAD_CHUNK = 1_000_000;

export interface EngineConfig {
  /** Due rows of the baseline, drained `baseRuns` times (each on a fresh table); the median counts. */
  base: number;
  baseRuns: number;
  /** Due rows of the large queue, drained in `rounds` rounds of three turns: ours, pgbench, pgbench with rows. */
  due: number;
  rounds: number;
  /** Finished rows (done, 30 days of history) under a working set of `working` due rows. */
  finished: number;
  working: number;
  /** Job counts at which ours is compared with graphile-worker. */
  graphile: number[];
  concurrency: number;
  batch: number;
}

export const DEFAULT_ENGINE_CONFIG: EngineConfig = {
  base: 10_000,
  baseRuns: 5,
  due: 1_000_000,
  rounds: 3,
  finished: 10_000_000,
  working: 100_000,
  graphile: [100_000, 1_000_000],
  concurrency: OUR_CONCURRENCY,
  batch: OUR_BATCH,
};

/** What CI runs: every scenario, in a couple of seconds. */
export const TINY_ENGINE_CONFIG: EngineConfig = {
  base: 500,
  baseRuns: 2,
  due: 3_200,
  rounds: 2,
  finished: 5_000,
  working: 1_000,
  graphile: [1_000],
  concurrency: OUR_CONCURRENCY,
  batch: 200,
};

const FLAGS: Record<string, keyof EngineConfig> = {
  base: 'base',
  'base-runs': 'baseRuns',
  due: 'due',
  rounds: 'rounds',
  finished: 'finished',
  working: 'working',
  graphile: 'graphile',
  concurrency: 'concurrency',
  batch: 'batch',
};

/** `--tiny` and `--due=1000000`-style flags over the defaults; `--graphile=` takes a list (empty: skip). */
export function engineConfig(flags: ReadonlyMap<string, string>): EngineConfig {
  const config: EngineConfig = {
    ...(flags.has('tiny') ? TINY_ENGINE_CONFIG : DEFAULT_ENGINE_CONFIG),
  };
  for (const [flag, raw] of flags) {
    if (flag === 'tiny') continue;
    const key = FLAGS[flag];
    if (!key) {
      throw new Error(
        `engine: unknown flag --${flag}; known: --tiny, ${Object.keys(FLAGS)
          .map((f) => `--${f}`)
          .join(', ')}`,
      );
    }
    const ints = raw === '' ? [] : raw.split(',').map((s) => Number(s.replaceAll('_', '')));
    if (ints.some((n) => !Number.isInteger(n) || n < (key === 'finished' ? 0 : 1))) {
      throw new Error(
        `engine: --${flag} takes ${key === 'graphile' ? 'a list of ' : ''}positive integers, got "${raw}"`,
      );
    }
    if (key === 'graphile') config.graphile = ints;
    else if (ints.length !== 1) {
      throw new Error(`engine: --${flag} takes one integer, got "${raw}"`);
    } else config[key] = ints[0]!;
  }
  return config;
}

export interface DrainResult {
  rows: number;
  ms: number;
  perSecond: number;
  /** From start to the first batch handled: start-up cost included in `ms`. */
  firstBatchMs: number;
  settings: string;
}

/** What the drain left behind: updates, how many were HOT, dead tuples, the due index's size. */
export interface TableStats {
  updates: number;
  hotUpdates: number;
  deadTuples: number;
  dueIndexBytesBefore: number;
  dueIndexBytesAfter: number;
}

/**
 * Pages (index and heap, shared buffers hit or read) that one claim's scan of the due index reads:
 * on the fresh table, after the turns (no vacuum), after a VACUUM.
 */
export interface ClaimBuffers {
  fresh: number;
  drained: number;
  vacuumed: number;
  /** Dead row versions the VACUUM found. */
  deadTuples: number;
}

export interface ScaleResult extends DrainResult {
  table: TableStats;
  /** Rows loaded (due plus finished), the load's time and the VACUUM (ANALYZE) after it. */
  loaded: number;
  loadMs: number;
  vacuumMs: number;
}

export interface GraphileComparison {
  jobs: number;
  ours: DrainResult;
  graphile: DrainResult;
  /** ours / graphile-worker, jobs per second. */
  ratio: number;
}

export interface EngineResult {
  config: EngineConfig;
  base: DrainResult;
  due: ScaleResult;
  /** pgbench with the claim's rows reduced to their ids inside the database, and with every row sent. */
  pgbench: DrainResult;
  pgbenchRows: DrainResult;
  claimBuffers: ClaimBuffers;
  history: ScaleResult;
  graphile: GraphileComparison[];
  /** due / base and history / base (goal ≥ 0.8), ours / pgbench at `due` rows (goal ≥ 0.9). */
  dueRatio: number;
  historyRatio: number;
  pgbenchRatio: number;
  pgbenchRowsRatio: number;
}

export async function runEngineBench(
  config: EngineConfig = DEFAULT_ENGINE_CONFIG,
): Promise<EngineResult> {
  const c = config;
  console.log(
    `\n== engine: no-op claims, concurrency ${c.concurrency}, batch ${fmt(c.batch)}; ` +
      `baseline ${fmt(c.base)} due rows (median of ${c.baseRuns}), ${fmt(c.due)} due rows, ` +
      `${fmt(c.finished)} finished + ${fmt(c.working)} due rows ==`,
  );
  const bench = await BenchDatabase.create();
  try {
    const bases: DrainResult[] = [];
    for (let i = 0; i < c.baseRuns; i++) {
      const { drained } = await bench.scenario({ due: c.base, finished: 0 }, (t) =>
        bench.drainOurs(t, c.base, c),
      );
      bases.push(drained);
      printDrain(`ours, ${fmt(c.base)} due (run ${i + 1})`, drained);
    }
    const base = median(bases);

    const large = await bench.scenario({ due: c.due, finished: 0 }, (t) =>
      bench.alternate(t, c.due, c.rounds, c),
    );
    const due: ScaleResult = { ...large.drained.ours, ...large.load };
    const { pgbench, pgbenchRows, buffers: claimBuffers } = large.drained;
    printScale(`ours, ${fmt(c.due)} due`, due);
    printDrain(`pgbench, ids only, ${fmt(c.due)} due`, pgbench);
    printDrain(`pgbench, rows sent, ${fmt(c.due)} due`, pgbenchRows);
    console.log(
      `  ${''.padEnd(44)} pages one claim's due-index scan reads: ${fmt(claimBuffers.fresh)} on the fresh table, ` +
        `${fmt(claimBuffers.drained)} after ${fmt(due.rows + pgbench.rows + pgbenchRows.rows)} rows without vacuum ` +
        `(${fmt(claimBuffers.deadTuples)} dead row versions), ${fmt(claimBuffers.vacuumed)} after VACUUM`,
    );

    const old = await bench.scenario({ due: c.working, finished: c.finished }, (t) =>
      bench.drainOurs(t, c.working, c),
    );
    const history: ScaleResult = { ...old.drained, ...old.load };
    printScale(`ours, ${fmt(c.finished)} finished + ${fmt(c.working)} due`, history);

    const graphile: GraphileComparison[] = [];
    for (const jobs of c.graphile) {
      // Ours drains a fresh table of the same size just before graphile-worker runs, so both meet
      // the machine in the same minutes.
      const { drained: ours } = await bench.scenario({ due: jobs, finished: 0 }, (t) =>
        bench.drainOurs(t, jobs, c),
      );
      printDrain(`ours, ${fmt(jobs)} due`, ours);
      const gw = await benchGraphile(bench.url, jobs, {
        concurrency: GW_CONCURRENCY,
        localQueue: GW_LOCAL_QUEUE,
        batchDelayMs: GW_BATCH_DELAY_MS,
      });
      printDrain(`graphile-worker, ${fmt(jobs)} jobs`, gw);
      graphile.push({ jobs, ours, graphile: gw, ratio: ours.perSecond / gw.perSecond });
    }

    const result: EngineResult = {
      config: c,
      base,
      due,
      pgbench,
      pgbenchRows,
      claimBuffers,
      history,
      graphile,
      dueRatio: due.perSecond / base.perSecond,
      historyRatio: history.perSecond / base.perSecond,
      pgbenchRatio: due.perSecond / pgbench.perSecond,
      pgbenchRowsRatio: due.perSecond / pgbenchRows.perSecond,
    };
    console.log(
      `  ${fmt(c.due)} due / ${fmt(c.base)} due: ${result.dueRatio.toFixed(2)} (goal >= 0.8)`,
    );
    console.log(
      `  ${fmt(c.finished)} finished / ${fmt(c.base)} due: ${result.historyRatio.toFixed(2)} (goal >= 0.8)`,
    );
    console.log(
      `  ours/pgbench (ids only) at ${fmt(c.due)} due: ${result.pgbenchRatio.toFixed(2)} (goal >= 0.9)`,
    );
    console.log(
      `  ours/pgbench (rows sent) at ${fmt(c.due)} due: ${result.pgbenchRowsRatio.toFixed(2)}`,
    );
    for (const g of graphile) {
      console.log(`  ours/graphile-worker at ${fmt(g.jobs)}: ${g.ratio.toFixed(2)}`);
    }
    return result;
  } finally {
    await bench.drop();
  }
}

/** Slices of one drain as one: their rows over their time. */
function total(xs: readonly DrainResult[]): DrainResult {
  const rows = xs.reduce((a, x) => a + x.rows, 0);
  const ms = xs.reduce((a, x) => a + x.ms, 0);
  const first = xs[0];
  if (!first) throw new Error('total of nothing');
  const turns = xs.map((x) => `${fmt(x.perSecond / 1000, 1)}k`).join(' ');
  return {
    rows,
    ms,
    perSecond: (rows * 1000) / ms,
    firstBatchMs: first.firstBatchMs,
    settings: `${first.settings}; ${xs.length} turns of ${fmt(first.rows)} rows: ${turns} rows/s`,
  };
}

function median<T extends { perSecond: number }>(xs: readonly T[]): T {
  const sorted = [...xs].sort((a, b) => a.perSecond - b.perSecond);
  const m = sorted[Math.floor((sorted.length - 1) / 2)];
  if (!m) throw new Error('median of nothing');
  return m;
}

function printDrain(label: string, r: DrainResult): void {
  const first = r.firstBatchMs > 0 ? `, first batch at ${fmt(r.firstBatchMs)} ms` : '';
  console.log(
    `  ${label.padEnd(44)} ${fmt(r.perSecond).padStart(8)} rows/s  (${fmt(r.ms)} ms${first}; ${r.settings})`,
  );
}

function printScale(label: string, r: ScaleResult): void {
  printDrain(label, r);
  const t = r.table;
  const kb = (b: number) => `${fmt(b / 1024)} kB`;
  console.log(
    `  ${''.padEnd(44)} loaded ${fmt(r.loaded)} rows in ${fmt(r.loadMs)} ms, vacuum (analyze) ${fmt(r.vacuumMs)} ms; ` +
      `drain: ${fmt(t.updates)} updates, ${fmt(t.hotUpdates)} HOT, ${fmt(t.deadTuples)} dead tuples, ` +
      `due index ${kb(t.dueIndexBytesBefore)} -> ${kb(t.dueIndexBytesAfter)}`,
  );
}

/** The schema every work table lives in, inside a database of its own that is dropped at the end. */
const SCHEMA = 'hub';

class BenchDatabase {
  private constructor(
    readonly name: string,
    readonly url: string,
    readonly db: Knex,
    private readonly admin: Knex,
  ) {}

  static async create(): Promise<BenchDatabase> {
    const name = uniqueName('bench_engine');
    const admin = createDb(
      { DATABASE_URL, DATABASE_SCHEMA: 'public', DATABASE_POOL_MAX: 1 },
      { applicationName: 'bench-engine' },
    );
    await admin.raw(`create database ${quoteIdent(name)}`);
    const url = new URL(DATABASE_URL);
    url.pathname = `/${name}`;
    const db = createDb(
      { DATABASE_URL: url.toString(), DATABASE_SCHEMA: SCHEMA, DATABASE_POOL_MAX: 2 },
      { applicationName: 'bench-engine' },
    );
    const bench = new BenchDatabase(name, url.toString(), db, admin);
    try {
      await migrate(db, SCHEMA);
    } catch (e) {
      await bench.drop();
      throw e;
    }
    return bench;
  }

  async drop(): Promise<void> {
    await this.db.destroy();
    try {
      await this.admin.raw(`drop database if exists ${quoteIdent(this.name)} with (force)`);
    } finally {
      await this.admin.destroy();
    }
  }

  /**
   * A fresh work table with `finished` done rows (30 days of history, oldest first) then `due` due
   * rows, VACUUM (ANALYZE)d as autovacuum would leave a table at rest; runs `drain` on it, reads
   * what the drain left behind, and drops the table.
   */
  async scenario<R>(
    rows: { due: number; finished: number },
    drain: (table: string) => Promise<R>,
  ): Promise<{ drained: R; load: Omit<ScaleResult, keyof DrainResult> }> {
    const table = uniqueName('jobs');
    const t = quoteIdent(table);
    await this.db.raw(workTableDdl(table));
    try {
      const loadStarted = performance.now();
      for (let from = 0; from < rows.finished; from += LOAD_CHUNK) {
        const n = Math.min(LOAD_CHUNK, rows.finished - from);
        await this.db.raw(
          `insert into ${t} (status, attempts, next_attempt_at, created_at, updated_at, finished_at)
           select 2, 1, at, at, at, at
             from (select now() - interval '30 days' + (interval '30 days' / ?) * g as at
                     from generate_series(?::bigint, ?::bigint) g) s`,
          [rows.finished, from + 1, from + n],
        );
        if (rows.finished > LOAD_CHUNK) {
          process.stdout.write(
            `  loading finished rows: ${fmt(from + n)} in ${fmt(performance.now() - loadStarted)} ms\r`,
          );
        }
      }
      await this.db.raw(
        `insert into ${t} (next_attempt_at) select now() from generate_series(1, ?)`,
        [rows.due],
      );
      const loadMs = performance.now() - loadStarted;
      if (rows.finished > LOAD_CHUNK) process.stdout.write('\n');
      const vacuumStarted = performance.now();
      await this.db.raw(`vacuum (analyze) ${t}`);
      const vacuumMs = performance.now() - vacuumStarted;

      const before = await this.stats(table);
      const drained = await drain(table);
      // Every row is claimed once and completed once; rolled-back claims (claimBuffers) count too.
      const explained = (drained as { explained?: number }).explained ?? 0;
      const after = await this.stats(table, before.updates + 2 * rows.due + explained);
      const { rows: left } = await this.db.raw<{ rows: { n: string }[] }>(
        `select count(*) as n from ${t} where status <> 2`,
      );
      if (Number(left[0]?.n) !== 0) {
        throw new Error(`${left[0]?.n} rows of ${table} not done after the drain`);
      }
      return {
        drained,
        load: {
          loaded: rows.due + rows.finished,
          loadMs,
          vacuumMs,
          table: {
            updates: after.updates - before.updates - explained,
            hotUpdates: after.hotUpdates - before.hotUpdates,
            deadTuples: after.deadTuples,
            dueIndexBytesBefore: before.dueIndexBytes,
            dueIndexBytesAfter: after.dueIndexBytes,
          },
        },
      };
    } finally {
      await this.db.raw(`drop table if exists ${t}`);
    }
  }

  /**
   * Ours, pgbench (ids only) and pgbench (rows sent) take turns of equal size on one table of `rows`
   * due rows, `rounds` times, so the table's state (due rows left, dead tuples) and the machine's
   * drift weigh alike on all three; what the equal turns leave is drained by ours and counted for none.
   */
  async alternate(
    table: string,
    rows: number,
    rounds: number,
    o: { concurrency: number; batch: number },
  ): Promise<{
    ours: DrainResult;
    pgbench: DrainResult;
    pgbenchRows: DrainResult;
    buffers: ClaimBuffers;
    explained: number;
  }> {
    const unit = o.batch * o.concurrency;
    const turn = Math.floor(rows / (3 * rounds) / unit) * unit;
    if (turn === 0) {
      throw new Error(
        `engine: ${fmt(rows)} rows do not make ${3 * rounds} turns of ${fmt(unit)} (batch × concurrency)`,
      );
    }
    const first = await this.claimBuffers(table, o.batch);
    let explained = first.updated;
    const ours: DrainResult[] = [];
    const pgbench: DrainResult[] = [];
    const pgbenchRows: DrainResult[] = [];
    for (let i = 0; i < rounds; i++) {
      ours.push(await this.drainOurs(table, turn, o));
      pgbench.push(await this.drainPgbench(table, turn, o, false));
      pgbenchRows.push(await this.drainPgbench(table, turn, o, true));
    }
    // What the dead entries left at the head of the due index cost one claim, and what VACUUM gives back.
    const drained = await this.claimBuffers(table, o.batch);
    explained += drained.updated;
    const { deadTuples } = await this.stats(table, 2 * 3 * rounds * turn + explained);
    await this.db.raw(`vacuum ${quoteIdent(table)}`);
    const vacuumed = await this.claimBuffers(table, o.batch);
    explained += vacuumed.updated;
    const buffers = {
      fresh: first.pages,
      drained: drained.pages,
      vacuumed: vacuumed.pages,
      deadTuples,
    };
    const rest = rows - 3 * rounds * turn;
    if (rest > 0) await this.drainOurs(table, rest, o);
    return {
      ours: total(ours),
      pgbench: total(pgbench),
      pgbenchRows: total(pgbenchRows),
      buffers,
      explained,
    };
  }

  /**
   * Pages the claim's scan of the due index reads (index and heap, shared buffers hit or read), from EXPLAIN
   * (ANALYZE, BUFFERS) of the engine's claim statement in a transaction that is rolled back.
   */
  async claimBuffers(
    tableName: string,
    batch: number,
  ): Promise<{ pages: number; updated: number }> {
    const { sql, bindings } = this.workTable(tableName)
      .claimStatement('bench-explain', batch)
      .toSQL();
    const trx = await this.db.transaction();
    try {
      const { rows } = await trx.raw<{ rows: { 'QUERY PLAN': unknown }[] }>(
        `explain (analyze, buffers, format json) ${sql}`,
        bindings,
      );
      const index = `${tableName}_due`;
      let pages = 0;
      let updated = 0;
      // The plan is a tree of nodes; every node that scans the due index counts.
      const walk = (node: unknown): void => {
        if (typeof node !== 'object' || node === null) return;
        if (Array.isArray(node)) return node.forEach(walk);
        const n = node as Record<string, unknown>;
        if (n['Index Name'] === index) {
          pages += Number(n['Shared Hit Blocks'] ?? 0) + Number(n['Shared Read Blocks'] ?? 0);
        }
        if (n['Node Type'] === 'ModifyTable') updated += Number(n['Actual Rows'] ?? 0);
        Object.values(n).forEach(walk);
      };
      walk(rows[0]?.['QUERY PLAN']);
      return { pages, updated };
    } finally {
      await trx.rollback();
    }
  }

  /**
   * The table's counters once `updates` of them are published: a backend publishes its counters at
   * most once a second, and at exit, which is why every drain closes its own connections.
   */
  async stats(
    table: string,
    updates = 0,
  ): Promise<{ updates: number; hotUpdates: number; deadTuples: number; dueIndexBytes: number }> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const { rows } = await this.db.raw<{
        rows: { upd: string; hot: string; dead: string; idx: string }[];
      }>(
        `select n_tup_upd as upd, n_tup_hot_upd as hot, n_dead_tup as dead,
                pg_relation_size(format('%I.%I', ?::text, ?::text)::regclass) as idx
           from pg_stat_user_tables where schemaname = ? and relname = ?`,
        [SCHEMA, `${table}_due`, SCHEMA, table],
      );
      const r = rows[0];
      const s = {
        updates: Number(r?.upd ?? 0),
        hotUpdates: Number(r?.hot ?? 0),
        deadTuples: Number(r?.dead ?? 0),
        dueIndexBytes: Number(r?.idx ?? 0),
      };
      if (s.updates >= updates || Date.now() > deadline) return s;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private workTable(table: string, db = this.db): WorkTable {
    return new WorkTable(db, createMetrics(), benchLogger(), {
      table,
      reconciler: 'bench',
      leaseMs: 60_000,
      maxAttempts: 5,
    });
  }

  /** Our engine: `concurrency` loops, each claiming `batch` rows and completing them, until `rows` are done. */
  async drainOurs(
    tableName: string,
    rows: number,
    o: { concurrency: number; batch: number },
  ): Promise<DrainResult> {
    // A pool of its own, closed at the end so its backends publish their counters (see stats()).
    // One connection per loop plus headroom, so loops never queue for the pool.
    const db = createDb(
      { DATABASE_URL: this.url, DATABASE_SCHEMA: SCHEMA, DATABASE_POOL_MAX: o.concurrency + 2 },
      { applicationName: 'bench-engine' },
    );
    // Connections opened before the clock starts, as pgbench's figure leaves out its connecting.
    await Promise.all(Array.from({ length: o.concurrency }, () => db.raw('select 1')));
    const table = this.workTable(tableName, db);
    const allDone = signal();
    let done = 0;
    let claimed = 0;
    let firstAt: number | undefined;
    const reconciler = new Reconciler<WorkRow>({
      name: 'bench',
      owner: 'bench',
      logger: benchLogger(),
      metrics: createMetrics(),
      concurrency: o.concurrency,
      // Never more than `rows` claimed, so that a drain can stop part way (see alternate()).
      claim: async (owner) => {
        const n = Math.min(o.batch, rows - claimed);
        if (n <= 0) return [];
        claimed += n;
        const batch = await table.claim<WorkRow>(owner, n);
        claimed -= n - batch.length;
        return batch;
      },
      handle: async (batch, owner) => {
        firstAt ??= performance.now();
        // Awaited before the `+=`: `done += await …` would read `done` first and lose the other loops' counts.
        const completed = await table.complete(
          batch.map((r) => r.id),
          owner,
        );
        done += completed.length;
        if (done >= rows) allDone.resolve();
      },
    });
    const started = performance.now();
    reconciler.start();
    try {
      await withDeadline(allDone.promise, DEADLINE_MS, 'our engine to complete every row');
      const ms = performance.now() - started;
      return {
        rows,
        ms,
        perSecond: (rows * 1000) / ms,
        firstBatchMs: (firstAt ?? started) - started,
        settings: `concurrency ${o.concurrency}, batch ${o.batch}`,
      };
    } finally {
      await reconciler.stop(1_000);
      await db.destroy();
    }
  }

  /**
   * The engine's own claim and complete statements (the text WorkTable sends, its values as pgbench
   * variables) run by pgbench: `concurrency` clients, `batch` rows per claim, extended protocol
   * like node-postgres. pgbench can carry values from one statement to the next only from a
   * one-row answer (`\gset`), so the claim is wrapped to answer the array of its ids; with
   * `sendRows`, also its rows as one array of records (the columns formatted and sent as to Node,
   * though an array of records costs more to format than rows do).
   */
  async drainPgbench(
    tableName: string,
    rows: number,
    o: { concurrency: number; batch: number },
    sendRows: boolean,
  ): Promise<DrainResult> {
    const table = this.workTable(tableName);
    const dir = await mkdtemp(join(tmpdir(), 'bench-engine-'));
    try {
      const script = join(dir, 'claim-complete.sql');
      await writeFile(script, pgbenchScript(table, o.batch, sendRows));
      const perClient = Math.ceil(rows / o.batch / o.concurrency);
      const args = [
        '-n',
        '-M',
        'extended',
        '-c',
        String(o.concurrency),
        '-j',
        String(o.concurrency),
        '-t',
        String(perClient),
        '-f',
        script,
        '-D',
        `limit=${o.batch}`,
        '-D',
        `lease=${table.options.leaseMs / 1000}`,
        this.url,
      ];
      const started = performance.now();
      const out = await new Promise<string>((resolve, reject) =>
        execFile(
          'pgbench',
          args,
          {
            env: {
              ...process.env,
              PGOPTIONS: `-c search_path=${SCHEMA}`,
              PGAPPNAME: 'bench-engine-pgbench',
            },
            maxBuffer: 1 << 20,
          },
          (err, stdout, stderr) =>
            err
              ? reject(new Error(`pgbench failed: ${stderr || err.message}`, { cause: err }))
              : resolve(stdout),
        ),
      );
      const wallMs = performance.now() - started;
      // pgbench's own time excludes its connection set-up, as ours excludes the pool's warm-up.
      const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out);
      const ms = tps ? ((perClient * o.concurrency) / Number(tps[1])) * 1000 : wallMs;
      return {
        rows,
        ms,
        perSecond: (rows * 1000) / ms,
        firstBatchMs: 0,
        settings: `pgbench -M extended, ${sendRows ? 'rows sent' : 'ids only'}, ${o.concurrency} clients, batch ${o.batch}, ${fmt(perClient)} transactions each`,
      };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/** The production work table: bookkeeping columns, the due/failed/finished indexes, the wake-up trigger. */
function workTableDdl(table: string): string {
  const t = quoteIdent(table);
  return `
create table ${t} (
  id bigserial primary key,
  status smallint not null default 0,
  attempts int not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_by text,
  locked_until timestamptz,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz
);
create index ${quoteIdent(`${table}_due`)} on ${t} (next_attempt_at, id) where status in (0, 1);
create index ${quoteIdent(`${table}_failed`)} on ${t} (id) where status = 3;
create index ${quoteIdent(`${table}_finished`)} on ${t} (updated_at) where status in (2, 3);
create trigger ${quoteIdent(`${table}_notify`)} after insert on ${t} for each statement execute function hub_notify_work();`;
}

/** Replaces `$n` placeholders of a native statement: pgbench variables for the marked values, literals for the rest. */
function toPgbench(
  native: { sql: string; bindings: readonly unknown[] },
  vars: ReadonlyMap<unknown, string>,
): string {
  return native.sql.replace(/\$(\d+)/g, (_, n: string) => {
    const v = native.bindings[Number(n) - 1];
    const name = vars.get(v);
    if (name) return `:${name}`;
    if (v === null) return 'null';
    if (typeof v === 'number') return String(v);
    if (typeof v === 'string') return `'${v.replaceAll("'", "''")}'`;
    throw new Error(`no pgbench form for binding $${n} (${typeof v})`);
  });
}

const OWNER = '\u0001owner';
const IDS = '\u0001ids';

function pgbenchScript(table: WorkTable, batch: number, sendRows: boolean): string {
  const vars = new Map<unknown, string>([
    [OWNER, 'client_id'],
    // complete() binds its ids as one array literal, built the same way here.
    [idArray([IDS]), 'ids'],
    [batch, 'limit'],
    [table.options.leaseMs / 1000, 'lease'],
  ]);
  const claim = toPgbench(table.claimStatement(OWNER, batch).toSQL().toNative(), vars);
  const complete = toPgbench(table.completeStatement([IDS], OWNER).toSQL().toNative(), vars);
  // One line per statement: pgbench ends a statement at a newline unless it ends in `\`.
  const oneLine = (sql: string) => sql.replace(/\s+/g, ' ').trim();
  // With `sendRows` the claim's rows also come back, as one array of records (every column of every
  // row formatted and sent, as to Node); the ids go on to the complete either way.
  const rowsColumn = sendRows ? ', array_agg(claimed) as rows' : '';
  return [
    `with claimed as (${oneLine(claim)}) select coalesce(array_agg(id), '{}') as ids${rowsColumn} from claimed \\gset`,
    `${oneLine(complete)};`,
    '',
  ].join('\n');
}

async function benchGraphile(
  url: string,
  jobs: number,
  o: { concurrency: number; localQueue: number; batchDelayMs: number },
): Promise<DrainResult> {
  const schema = uniqueName('bench_gw');
  const preset = {
    worker: {
      connectionString: url,
      schema,
      concurrentJobs: o.concurrency,
      // The documented pairing: one connection per concurrent job plus one.
      maxPoolSize: o.concurrency + 1,
      localQueue: { size: o.localQueue },
      completeJobBatchDelay: o.batchDelayMs,
      failJobBatchDelay: o.batchDelayMs,
      logger: quietGraphileLogger(),
    },
  };
  const db = createDb(
    { DATABASE_URL: url, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: 2 },
    { applicationName: 'bench-gw' },
  );
  try {
    const utils = await makeWorkerUtils({ preset });
    try {
      await utils.migrate();
      // addJobs sends its batch as one JSON parameter: chunks keep each under a few MB.
      for (let added = 0; added < jobs; added += 100_000) {
        const n = Math.min(100_000, jobs - added);
        await utils.addJobs(Array.from({ length: n }, () => ({ identifier: 'noop', payload: {} })));
      }
    } finally {
      await utils.release();
    }
    await db.raw(`vacuum (analyze) ${quoteIdent(schema)}._private_jobs`);

    const allRan = signal();
    let ran = 0;
    let firstAt: number | undefined;
    const taskList: TaskList = {
      noop: () => {
        firstAt ??= performance.now();
        if (++ran >= jobs) allRan.resolve();
      },
    };
    const started = performance.now();
    const runner = await run({ preset, noHandleSignals: true, taskList });
    try {
      await withDeadline(allRan.promise, DEADLINE_MS, 'graphile-worker to run every job');
      // A job is done when its row is deleted; with batched completion that lags the task itself.
      await withDeadline(
        waitUntilEmpty(db, schema),
        DEADLINE_MS,
        'graphile-worker to delete every job',
      );
      const ms = performance.now() - started;
      return {
        rows: jobs,
        ms,
        perSecond: (jobs * 1000) / ms,
        firstBatchMs: (firstAt ?? started) - started,
        settings: `concurrentJobs ${o.concurrency}, localQueue ${o.localQueue}, completeJobBatchDelay ${o.batchDelayMs}`,
      };
    } finally {
      await runner.stop();
    }
  } finally {
    await db.raw(`drop schema if exists ${quoteIdent(schema)} cascade`);
    await db.destroy();
  }
}

async function waitUntilEmpty(db: Knex, schema: string): Promise<void> {
  for (;;) {
    const { rows } = await db.raw<{ rows: { n: string }[] }>(
      `select count(*) as n from ${quoteIdent(schema)}._private_jobs`,
    );
    if (Number(rows[0]?.n ?? 0) === 0) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** graphile-worker logs every start and stop at info level; only its warnings and errors matter here. */
function quietGraphileLogger(): GraphileLogger {
  return new GraphileLogger(() => (level, message) => {
    if (level === 'error' || level === 'warning') {
      console.error(`graphile-worker ${level}: ${message}`);
    }
  });
}
