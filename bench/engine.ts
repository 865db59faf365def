// Engine throughput: no-op jobs claimed and completed per second by our reconcile engine
// (Reconciler + WorkTable) versus graphile-worker, on the same PostgreSQL in the same run.
import type { Knex } from 'knex';
import { Logger as GraphileLogger, makeWorkerUtils, run, type TaskList } from 'graphile-worker';
import { createDb, quoteIdent } from '../services/core/db.js';
import { Reconciler } from '../services/core/engine/reconciler.js';
import { WorkTable, type WorkRow } from '../services/core/engine/work-table.js';
import { migrate } from '../services/core/migrate.js';
import { createMetrics } from '../services/core/metrics.js';
import { DATABASE_URL, benchLogger, envInt, fmt, signal, uniqueName, withDeadline } from './support.js';

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

const DEADLINE_MS = 10 * 60_000;

export interface SideResult {
  jobs: number;
  ms: number;
  perSecond: number;
  /** From start to the first job handled: start-up cost included in `ms`. */
  firstJobMs: number;
  settings: string;
}

export interface EngineResult {
  jobs: number;
  ours: SideResult;
  graphile: SideResult;
  /** ours / graphile-worker, jobs per second. */
  ratio: number;
}

export async function runEngineBench(): Promise<EngineResult> {
  // 100,000 jobs keep each side running for seconds, not a few hundred milliseconds of noise.
  const jobs = envInt('BENCH_JOBS', 100_000);
  console.log(`\n== engine: ${fmt(jobs)} no-op jobs per side ==`);
  const ours = await benchOurs(jobs, {
    concurrency: envInt('BENCH_ENGINE_CONCURRENCY', OUR_CONCURRENCY),
    batch: envInt('BENCH_ENGINE_BATCH', OUR_BATCH),
  });
  print('ours', ours);
  const graphile = await benchGraphile(jobs, {
    concurrency: envInt('BENCH_GW_CONCURRENCY', GW_CONCURRENCY),
    localQueue: envInt('BENCH_GW_LOCAL_QUEUE', GW_LOCAL_QUEUE),
    batchDelayMs: envInt('BENCH_GW_BATCH_DELAY_MS', GW_BATCH_DELAY_MS, -1),
  });
  print('graphile-worker', graphile);
  const ratio = ours.perSecond / graphile.perSecond;
  console.log(`  ratio ours/graphile-worker: ${ratio.toFixed(2)}`);
  return { jobs, ours, graphile, ratio };
}

function print(label: string, r: SideResult): void {
  console.log(
    `  ${label.padEnd(16)} ${fmt(r.perSecond).padStart(8)} jobs/s  ` +
      `(${fmt(r.ms)} ms, first job at ${fmt(r.firstJobMs)} ms; ${r.settings})`,
  );
}

/** Our engine on a table with the bookkeeping columns and due index every work table has. */
async function benchOurs(jobs: number, o: { concurrency: number; batch: number }): Promise<SideResult> {
  const schema = uniqueName('bench_engine');
  // One connection per loop plus headroom, so loops never queue for the pool.
  const db = createDb(
    { DATABASE_URL, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: o.concurrency + 2 },
    { applicationName: 'bench-engine' },
  );
  const logger = benchLogger();
  let reconciler: Reconciler<WorkRow> | undefined;
  try {
    await migrate(db, schema);
    await db.raw(`
      create table bench_jobs (
        id bigserial primary key,
        status smallint not null default 0,
        attempts int not null default 0,
        next_attempt_at timestamptz not null default now(),
        locked_by text,
        locked_until timestamptz,
        last_error text,
        updated_at timestamptz not null default now()
      );
      create index bench_jobs_due on bench_jobs (next_attempt_at, id) where status in (0, 1);`);
    await db.raw('insert into bench_jobs (next_attempt_at) select now() from generate_series(1, ?)', [jobs]);
    // Planner statistics as autovacuum would have them on a live table (graphile's side gets the same).
    await db.raw('analyze bench_jobs');

    const metrics = createMetrics();
    const table = new WorkTable(db, metrics, logger, {
      table: 'bench_jobs', reconciler: 'bench', leaseMs: 60_000, maxAttempts: 5,
    });
    const allDone = signal();
    let done = 0;
    let firstAt: number | undefined;
    reconciler = new Reconciler<WorkRow>({
      name: 'bench',
      owner: 'bench',
      logger,
      metrics,
      concurrency: o.concurrency,
      claim: (owner) => table.claim<WorkRow>(owner, o.batch),
      handle: async (batch, owner) => {
        firstAt ??= performance.now();
        // Awaited before the `+=`: `done += await …` would read `done` first and lose the other loops' counts.
        const completed = await table.complete(batch.map((r) => r.id), owner);
        done += completed.length;
        if (done >= jobs) allDone.resolve();
      },
    });

    const started = performance.now();
    reconciler.start();
    await withDeadline(allDone.promise, DEADLINE_MS, 'our engine to complete every job');
    const ms = performance.now() - started;
    await reconciler.stop();

    const { rows } = await db.raw<{ rows: { n: string }[] }>('select count(*) as n from bench_jobs where status = 2');
    const completed = Number(rows[0]?.n ?? 0);
    if (completed !== jobs) throw new Error(`our engine: ${completed} of ${jobs} jobs marked done`);
    return {
      jobs,
      ms,
      perSecond: (jobs * 1000) / ms,
      firstJobMs: (firstAt ?? started) - started,
      settings: `concurrency ${o.concurrency}, batch ${o.batch}`,
    };
  } finally {
    await reconciler?.stop(1_000);
    await dropSchema(db, schema);
    await db.destroy();
  }
}

async function benchGraphile(
  jobs: number,
  o: { concurrency: number; localQueue: number; batchDelayMs: number },
): Promise<SideResult> {
  const schema = uniqueName('bench_gw');
  const preset = {
    worker: {
      connectionString: DATABASE_URL,
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
  const db = createDb({ DATABASE_URL, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: 2 }, { applicationName: 'bench-gw' });
  try {
    const utils = await makeWorkerUtils({ preset });
    try {
      await utils.migrate();
      await utils.addJobs(Array.from({ length: jobs }, () => ({ identifier: 'noop', payload: {} })));
    } finally {
      await utils.release();
    }
    await db.raw(`analyze ${quoteIdent(schema)}._private_jobs`);

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
      await withDeadline(waitUntilEmpty(db, schema), DEADLINE_MS, 'graphile-worker to delete every job');
      const ms = performance.now() - started;
      return {
        jobs,
        ms,
        perSecond: (jobs * 1000) / ms,
        firstJobMs: (firstAt ?? started) - started,
        settings: `concurrentJobs ${o.concurrency}, localQueue ${o.localQueue}, completeJobBatchDelay ${o.batchDelayMs}`,
      };
    } finally {
      await runner.stop();
    }
  } finally {
    await dropSchema(db, schema);
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

async function dropSchema(db: Knex, schema: string): Promise<void> {
  await db.raw(`drop schema if exists ${quoteIdent(schema)} cascade`);
}

/** graphile-worker logs every start and stop at info level; only its warnings and errors matter here. */
function quietGraphileLogger(): GraphileLogger {
  return new GraphileLogger(() => (level, message) => {
    if (level === 'error' || level === 'warning') console.error(`graphile-worker ${level}: ${message}`);
  });
}
