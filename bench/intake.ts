// Webhook intake against the database's own speed: valid ALLIO and warehouse webhooks driven by wrk
// through HTTP, validation and the durable commit (200 only after it) of 1 or more api processes,
// next to pgbench inserting the same row shape one row per transaction, at the same concurrency and
// for the same time, into its own schema of the same PostgreSQL. Ratio = accepted webhooks/s ÷
// pgbench transactions/s.
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { upsertIntegration } from '../services/domains/allio/integrations.js';
import { API_VERSION, allioIntegrationResource } from '../services/domains/allio/resource.js';
import { createDb, quoteIdent, type Db } from '../services/core/db.js';
import { migrate } from '../services/core/migrate.js';
import { sign } from '../services/contracts/standard-webhooks.js';
import type { IntakeChildConfig } from './intake-server.js';
import { DATABASE_URL, REDIS_URL, envInt, fmt, uniqueName, withDeadline } from './support.js';

const run = promisify(execFile);
const INTEGRATIONS = 50;
const ALLIO_BODIES_PER_INTEGRATION = 4;
/** Distinct warehouse deliveries prepared per measured second (each needs its own id and signature). */
const WAREHOUSE_PER_SECOND = 30_000;
const WARMUP_SECONDS = 2;

export type IntakeSource = 'allio' | 'warehouse';

export interface LoadFigures {
  /** 2xx answers per second over wrk's measured duration. */
  perSecond: number;
  requests: number;
  ok: number;
  /** Non-2xx answers, socket errors and timeouts. */
  errors: number;
  p50Ms: number;
  p99Ms: number;
  /** Rows the run committed; never fewer than the 200s. */
  rows: number;
}

export interface IntakeRun {
  source: IntakeSource;
  processes: number;
  ours: LoadFigures;
  pgbench: PgbenchFigures;
  ratio: number;
}

export interface IntakeResult {
  connections: number;
  seconds: number;
  runs: IntakeRun[];
}

const WRK_MISSING =
  'wrk is not installed: install it (Debian/Ubuntu: `apt-get install -y wrk`, macOS: `brew install wrk`) and run the intake benchmark again';

async function requireTool(name: string, install: string): Promise<void> {
  let missing = false;
  try {
    await run(name, ['--version']);
  } catch (thrown) {
    // wrk prints its version and exits 1; only a missing binary is fatal.
    missing = (thrown as NodeJS.ErrnoException).code === 'ENOENT';
  }
  if (missing) throw new Error(install);
}

async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  await once(s, 'close');
  return port;
}

/** The child as built (dist/bench/intake-server.js), or its TypeScript source through tsx (tests). */
function startApi(cfg: IntakeChildConfig): { proc: ChildProcess; ready: Promise<void> } {
  const ts = import.meta.url.endsWith('.ts');
  const script = new URL(ts ? './intake-server.ts' : './intake-server.js', import.meta.url);
  const proc = fork(script, [], {
    env: { ...process.env, BENCH_INTAKE_CHILD: JSON.stringify(cfg) },
    execArgv: [
      ...(ts ? ['--import', 'tsx'] : []),
      ...(process.env.BENCH_INTAKE_CPU_PROF
        ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_INTAKE_CPU_PROF]
        : []),
    ],
    // The api's JSON logs are written as in production, to a pipe nobody keeps.
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const ready = new Promise<void>((resolve, reject) => {
    proc.once('message', () => resolve());
    proc.once('exit', (code) =>
      reject(new Error(`intake api child exited with ${code} before listening`)),
    );
  });
  return { proc, ready };
}

async function stopApi(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = once(proc, 'exit');
  proc.send({ stop: true });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

interface Integration {
  id: string;
  uuid: string;
  key: string;
}

async function addIntegrations(db: Db, n: number): Promise<Integration[]> {
  const out: Integration[] = [];
  for (let i = 0; i < n; i++) {
    const uuid = randomUUID();
    const key = `wh_${randomBytes(16).toString('hex')}`;
    const resource = allioIntegrationResource.parse({
      apiVersion: API_VERSION,
      kind: 'AllioIntegration',
      metadata: { name: `bench-${i}` },
      spec: {
        integrationUuid: uuid,
        webhookKey: key,
        apiBaseUrl: 'http://127.0.0.1:9',
        apiToken: 'bench',
        deletionControl: false,
        active: true,
      },
    });
    const { id } = await upsertIntegration(db, resource);
    out.push({ id, uuid, key });
  }
  return out;
}

const allioBody = (uuid: string, k: number) =>
  JSON.stringify({ uuid, command: 'RESERVE_ADD', indexes: [1000 + k, 2000 + k, 3000 + k] });

function warehouseBody(k: number): string {
  return JSON.stringify({
    type: 'stock.receipt',
    timestamp: new Date().toISOString(),
    data: { ingredient: `ingredient-${k % 100}`, quantity: 1 + (k % 7), unit: 'g' },
  });
}

// wrk's Lua: requests are formatted once in init() from a tab-separated file and cycled through;
// done() prints one JSON line with the figures.
const WRK_LUA = `
local reqs, n, i = {}, 0, 0
function init(args)
  for line in io.lines(args[1]) do
    local f = {}
    for part in string.gmatch(line, "[^\\t]+") do f[#f + 1] = part end
    local headers = { ["Content-Type"] = "application/json" }
    if #f == 5 then
      headers["webhook-id"] = f[2]; headers["webhook-timestamp"] = f[3]; headers["webhook-signature"] = f[4]
    end
    n = n + 1
    reqs[n] = wrk.format("POST", f[1], headers, f[#f])
  end
end
function request()
  i = i % n + 1
  return reqs[i]
end
function done(s, latency, requests)
  local e = s.errors
  io.write(string.format('\\nRESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    s.requests, s.duration, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
`;

interface WrkOut {
  requests: number;
  duration_us: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50_us: number;
  p99_us: number;
}

async function wrk(
  url: string,
  script: string,
  requestsFile: string,
  connections: number,
  seconds: number,
): Promise<WrkOut> {
  const { stdout } = await withDeadline(
    run(
      'wrk',
      [
        '-t1',
        `-c${connections}`,
        `-d${seconds}s`,
        '--timeout',
        '10s',
        '-s',
        script,
        url,
        '--',
        requestsFile,
      ],
      { maxBuffer: 1 << 20 },
    ),
    (seconds + 120) * 1000,
    'wrk',
  );
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
  return JSON.parse(line.slice('RESULT '.length)) as WrkOut;
}

export interface PgbenchFigures {
  tps: number;
  p50Ms: number;
  p99Ms: number;
}

/** Transactions per second (pgbench's own figure) and latency percentiles from its per-transaction log. */
async function pgbench(
  schema: string,
  sql: string,
  dir: string,
  connections: number,
  seconds: number,
): Promise<PgbenchFigures> {
  const tag = randomBytes(4).toString('hex');
  const file = path.join(dir, `pgbench-${tag}.sql`);
  const logPrefix = path.join(dir, `pgbench-${tag}-log`);
  await writeFile(file, sql);
  const { stdout, stderr } = await withDeadline(
    run(
      'pgbench',
      [
        '-n',
        '-M',
        'prepared',
        '-c',
        String(connections),
        '-j',
        '1',
        '-T',
        String(seconds),
        '-l',
        `--log-prefix=${logPrefix}`,
        '-f',
        file,
        DATABASE_URL,
      ],
      {
        env: { ...process.env, PGOPTIONS: `-c search_path=${schema}` },
        maxBuffer: 1 << 20,
        cwd: dir,
      },
    ),
    (seconds + 120) * 1000,
    'pgbench',
  );
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
  if (!m?.[1]) throw new Error(`pgbench printed no tps:\n${stdout}\n${stderr}`);
  // Log lines: client_id transaction_no time_us script_no time_epoch time_us_part.
  const latencies: number[] = [];
  for (const name of await readdir(dir)) {
    if (!name.startsWith(path.basename(logPrefix))) continue;
    for (const line of (await readFile(path.join(dir, name), 'utf8')).split('\n')) {
      const us = Number(line.split(' ')[2]);
      if (Number.isFinite(us) && line !== '') latencies.push(us / 1000);
    }
  }
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { tps: Number(m[1]), p50Ms: at(0.5), p99Ms: at(0.99) };
}

async function countRows(db: Db, table: string): Promise<number> {
  const [row] = await db(table).count<{ count: string }[]>('* as count');
  return Number(row?.count ?? 0);
}

export async function runIntakeBench(): Promise<IntakeResult> {
  await requireTool('wrk', WRK_MISSING);
  await requireTool(
    'pgbench',
    'pgbench is not installed: install it (Debian: `apt-get install -y postgresql-client`)',
  );
  const seconds = envInt('BENCH_INTAKE_SECONDS', 10);
  const connections = envInt('BENCH_INTAKE_CONNECTIONS', 32);
  const processList = (process.env.BENCH_INTAKE_PROCESSES ?? '1,2')
    .split(',')
    .map((s) => Number(s.trim()));
  if (processList.some((p) => !Number.isInteger(p) || p < 1 || p > 8)) {
    throw new Error('BENCH_INTAKE_PROCESSES must list integers 1-8, e.g. "1,2"');
  }
  const sources = (process.env.BENCH_INTAKE_SOURCES ?? 'allio,warehouse')
    .split(',')
    .map((s) => s.trim()) as IntakeSource[];
  if (sources.some((s) => s !== 'allio' && s !== 'warehouse')) {
    throw new Error('BENCH_INTAKE_SOURCES must list allio and/or warehouse');
  }
  const warmup = envInt('BENCH_INTAKE_WARMUP_SECONDS', WARMUP_SECONDS, 0);
  console.log(
    `\n== intake: wrk -c${connections} and pgbench -c${connections}, ${seconds} s each, api processes ${processList.join(' then ')} ==`,
  );

  const schema = uniqueName('bench_intake');
  const pgSchema = uniqueName('bench_intake_pg');
  const keyPrefix = `bench:${schema}:`;
  const db = createDb(
    { DATABASE_URL, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: 2 },
    { applicationName: 'bench-intake' },
  );
  const pgDb = createDb(
    { DATABASE_URL, DATABASE_SCHEMA: pgSchema, DATABASE_POOL_MAX: 2 },
    { applicationName: 'bench-intake' },
  );
  const dir = await mkdtemp(path.join(tmpdir(), 'bench-intake-'));
  const apis: ChildProcess[] = [];
  try {
    await migrate(db, schema);
    await migrate(pgDb, pgSchema);
    const integrations = await addIntegrations(db, INTEGRATIONS);
    const [pgIntegration] = await addIntegrations(pgDb, 1);
    if (!pgIntegration) throw new Error('no pgbench integration');
    const secret = `whsec_${randomBytes(24).toString('base64')}`;

    const script = path.join(dir, 'intake.lua');
    await writeFile(script, WRK_LUA);
    const allioFile = path.join(dir, 'allio.tsv');
    await writeFile(
      allioFile,
      integrations
        .flatMap((it) =>
          Array.from(
            { length: ALLIO_BODIES_PER_INTEGRATION },
            (_, k) => `/webhooks/allio/${it.key}\t${allioBody(it.uuid, k)}\n`,
          ),
        )
        .join(''),
    );
    let warehouseFileN = 0;
    const warehouseFile = async (n: number): Promise<string> => {
      const file = path.join(dir, `warehouse-${warehouseFileN++}.tsv`);
      const ts = Math.floor(Date.now() / 1000);
      const lines: string[] = [];
      for (let k = 0; k < n; k++) {
        const id = `msg_${randomUUID()}`;
        const body = warehouseBody(k);
        lines.push(`/webhooks/warehouse\t${id}\t${ts}\t${sign(secret, id, ts, body)}\t${body}\n`);
      }
      await writeFile(file, lines.join(''));
      return file;
    };
    const pgSql: Record<IntakeSource, string> = {
      allio: `insert into allio_webhook (integration_uuid, integration_id, command, external_ids_array, request_id)
  values ('${pgIntegration.uuid}', ${pgIntegration.id}, 'RESERVE_ADD', '[1001,2001,3001]', gen_random_uuid()::text);\n`,
      warehouse: `insert into kitchen_warehouse_events (webhook_id, type, payload, occurred_at)
  values ('msg_' || gen_random_uuid()::text, 'stock.receipt', '${warehouseBody(1)}'::jsonb, now())
  on conflict (webhook_id) do nothing;\n`,
    };
    const table: Record<IntakeSource, string> = {
      allio: 'allio_webhook',
      warehouse: 'kitchen_warehouse_events',
    };

    const runs: IntakeRun[] = [];
    for (const processes of processList) {
      const port = await freePort();
      const cfg: IntakeChildConfig = {
        databaseUrl: DATABASE_URL,
        redisUrl: REDIS_URL,
        schema,
        keyPrefix,
        port,
        warehouseSecret: secret,
        logLevel: process.env.BENCH_INTAKE_LOG_LEVEL ?? 'info',
        uncached: process.env.BENCH_INTAKE_UNCACHED === 'true',
        env: {
          ALLIO_WEBHOOKS_PER_MINUTE: '1000000',
          ALLIO_WEBHOOK_IDS_PER_MINUTE: '100000000',
          ...extraEnv(),
        },
      };
      const started = Array.from({ length: processes }, () => startApi(cfg));
      apis.push(...started.map((s) => s.proc));
      await withDeadline(
        Promise.all(started.map((s) => s.ready)),
        60_000,
        'the api processes to listen',
      );
      const url = `http://127.0.0.1:${port}`;
      for (const source of sources) {
        // Warehouse deliveries are used once each: the warm-up gets its own.
        if (warmup > 0) {
          await wrk(
            url,
            script,
            source === 'allio' ? allioFile : await warehouseFile(WAREHOUSE_PER_SECOND * warmup),
            connections,
            warmup,
          );
        }
        const file =
          source === 'allio' ? allioFile : await warehouseFile(WAREHOUSE_PER_SECOND * seconds);
        const before = await countRows(db, table[source]);
        const w = await wrk(url, script, file, connections, seconds);
        const rows = (await countRows(db, table[source])) - before;
        const errors = w.connect + w.read + w.write + w.status + w.timeout;
        const ok = w.requests - w.status;
        const ours: LoadFigures = {
          perSecond: ok / (w.duration_us / 1e6),
          requests: w.requests,
          ok,
          errors,
          p50Ms: w.p50_us / 1000,
          p99Ms: w.p99_us / 1000,
          rows,
        };
        if (rows < ok) {
          throw new Error(
            `${source}: ${ok} webhooks answered 2xx but only ${rows} rows were committed`,
          );
        }
        const pg = await pgbench(pgSchema, pgSql[source], dir, connections, seconds);
        const r: IntakeRun = {
          source,
          processes,
          ours,
          pgbench: pg,
          ratio: ours.perSecond / pg.tps,
        };
        runs.push(r);
        console.log(
          `${source.padEnd(9)} ${processes} api: ${fmt(ours.perSecond)} webhooks/s (p50 ${fmt(ours.p50Ms, 2)} ms, p99 ${fmt(ours.p99Ms, 2)} ms, ` +
            `${errors} errors, ${fmt(rows)} rows) | pgbench ${fmt(pg.tps)} tps (p50 ${fmt(pg.p50Ms, 2)} ms, p99 ${fmt(pg.p99Ms, 2)} ms) | ratio ${r.ratio.toFixed(2)}`,
        );
      }
      await Promise.all(started.map((s) => stopApi(s.proc)));
    }
    return { connections, seconds, runs };
  } finally {
    await Promise.all(apis.map((p) => stopApi(p).catch(() => undefined)));
    for (const [d, s] of [
      [db, schema],
      [pgDb, pgSchema],
    ] as const) {
      await d.raw(`drop schema if exists ${quoteIdent(s)} cascade`).catch(() => undefined);
      await d.destroy();
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/** BENCH_INTAKE_ENV="A=1,B=2": api settings to try (the intake knobs) without editing the benchmark. */
function extraEnv(): Record<string, string> {
  const raw = process.env.BENCH_INTAKE_ENV ?? '';
  return Object.fromEntries(
    raw
      .split(',')
      .filter(Boolean)
      .map((kv) => kv.split('=', 2) as [string, string]),
  );
}
