// Entry point of `npm run bench`: runs the benchmarks (or those named in argv, e.g.
// `npm run bench -- engine`, with `--flag=value` options such as `--due=1000000`; `open-door` and
// `websockets` are the two parts of `smart-home`) and prints a summary table of the ratios.
import type { AllioResult } from './allio.js';
import type { FairnessResult } from './allio-fairness.js';
import type { EngineResult } from './engine.js';
import type { IntakeResult } from './intake.js';
import type { RoundTripResult, SmartHomeResult } from './smart-home.js';
import { fmt } from './support.js';

const BENCHMARKS = [
  'engine',
  'allio',
  'allio-fairness',
  'smart-home',
  'intake',
  'open-door',
  'websockets',
] as const;
/** Parts of `smart-home`, run on their own only when named. */
const PARTS: readonly string[] = ['open-door', 'websockets'];
type Name = (typeof BENCHMARKS)[number];

/** `--name=value` (or `--name`, value '') arguments, apart from the benchmark names. */
function flags(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const a of argv.filter((x) => x.startsWith('--'))) {
    const eq = a.indexOf('=');
    out.set(eq < 0 ? a.slice(2) : a.slice(2, eq), eq < 0 ? '' : a.slice(eq + 1));
  }
  return out;
}

function selected(argv: readonly string[]): Name[] {
  argv = argv.filter((a) => !a.startsWith('--'));
  if (argv.length === 0) return BENCHMARKS.filter((b) => !PARTS.includes(b));
  const unknown = argv.filter((a) => !(BENCHMARKS as readonly string[]).includes(a));
  if (unknown.length > 0) {
    throw new Error(
      `unknown benchmark ${unknown.join(', ')}; choose from ${BENCHMARKS.join(', ')}`,
    );
  }
  return BENCHMARKS.filter((b) => argv.includes(b));
}

interface Row {
  benchmark: string;
  measured: string;
  reference: string;
  ratio: string;
  goal: string;
}

function engineRows(r: EngineResult): Row[] {
  const c = r.config;
  const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const rs = (n: number) => `${fmt(n)} rows/s`;
  return [
    {
      benchmark: `engine: ${fmt(c.due)} due rows`,
      measured: `ours ${rs(r.due.perSecond)}`,
      reference: `ours at ${fmt(c.base)} due ${rs(r.base.perSecond)}`,
      ratio: r.dueRatio.toFixed(2),
      goal: `>= 0.8 ${met(r.dueRatio >= 0.8)}`,
    },
    {
      benchmark: `engine: ${fmt(c.finished)} finished + ${fmt(c.working)} due`,
      measured: `ours ${rs(r.history.perSecond)}`,
      reference: `ours at ${fmt(c.base)} due ${rs(r.base.perSecond)}`,
      ratio: r.historyRatio.toFixed(2),
      goal: `>= 0.8 ${met(r.historyRatio >= 0.8)}`,
    },
    {
      benchmark: `engine: ${fmt(c.due)} due rows`,
      measured: `ours ${rs(r.due.perSecond)}`,
      reference: `pgbench, ids only ${rs(r.pgbench.perSecond)}`,
      ratio: r.pgbenchRatio.toFixed(2),
      goal: `>= 0.9 ${met(r.pgbenchRatio >= 0.9)}`,
    },
    {
      benchmark: `engine: ${fmt(c.due)} due rows`,
      measured: `ours ${rs(r.due.perSecond)}`,
      reference: `pgbench, rows sent ${rs(r.pgbenchRows.perSecond)}`,
      ratio: r.pgbenchRowsRatio.toFixed(2),
      goal: '',
    },
    ...r.graphile.map((g) => ({
      benchmark: `engine: ${fmt(g.jobs)} jobs`,
      measured: `ours ${fmt(g.ours.perSecond)} jobs/s`,
      reference: `graphile-worker ${fmt(g.graphile.perSecond)} jobs/s`,
      ratio: g.ratio.toFixed(2),
      goal: `>= 1.0 ${met(g.ratio >= 1)}`,
    })),
  ];
}

function allioRows(r: AllioResult): Row[] {
  return [
    {
      benchmark: `allio (${fmt(r.records)} records, 4 replicas)`,
      measured: `${fmt(r.recordsPerSecond, 1)} records/s`,
      reference: `ceiling ${fmt(r.ceiling)} records/s`,
      ratio: r.ratio.toFixed(3),
      goal: `>= 0.95 ${r.ratio >= 0.95 ? 'met' : 'MISSED'}`,
    },
    {
      benchmark: 'allio quota',
      measured: `${r.violations} violations`,
      reference: `maxInWindow ${r.maxInWindow}`,
      ratio: '',
      goal: `0 violations ${r.violations === 0 ? 'met' : 'MISSED'}`,
    },
  ];
}

function fairnessRows(r: FairnessResult): Row[] {
  const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const p99 = r.webhooks.p99;
  return [
    {
      benchmark: `allio-fairness webhooks (9 clients, 1 with ${fmt(r.options.bulkIds)} ids of backlog)`,
      measured: `p99 ${fmt(p99)} ms (p50 ${fmt(r.webhooks.p50)}, ${r.lost} lost)`,
      reference: 'goal 5,000 ms',
      ratio: (p99 / 5_000).toFixed(2),
      goal: `p99 < 5 s ${met(p99 < 5_000 && r.lost === 0)}`,
    },
    {
      benchmark: 'allio-fairness quota',
      measured: `${fmt(r.requests)} requests in ${fmt(r.seconds, 1)} s, ${r.violations} violations`,
      reference: `ceiling ${r.options.rate} req/s`,
      ratio: r.quotaUse.toFixed(3),
      goal: `>= 0.95, 0 violations ${met(r.quotaUse >= 0.95 && r.violations === 0)}`,
    },
    {
      benchmark: 'allio-fairness egress IPs',
      measured: `2 IPs ${fmt(r.twoIps, 1)} records/s`,
      reference: `1 IP ${fmt(r.oneIp, 1)} records/s`,
      ratio: r.ipRatio.toFixed(2),
      goal: `about 2, 0 violations ${met(r.ipRatio >= 1.9 && r.ipViolations === 0)}`,
    },
  ];
}

function smartHomeRows(r: SmartHomeResult): Row[] {
  const errors = (x: RoundTripResult) => Object.values(x.errors).reduce((a, b) => a + b, 0);
  const mb = (b: number) => fmt(b / (1024 * 1024));
  const rows: Row[] = [];
  const rt = r.roundTrip;
  if (rt) {
    rows.push({
      benchmark: `smart-home open round trip (${r.rate}/s, ${r.seconds} s)`,
      measured: `ours p99 ${fmt(rt.ours.latency.p99, 2)} ms (p50 ${fmt(rt.ours.latency.p50, 2)}, ${errors(rt.ours)} errors)`,
      reference: `bare amqplib p99 ${fmt(rt.bare.latency.p99, 2)} ms`,
      ratio: rt.ratio.toFixed(2),
      goal: `<= 2.0 ${rt.ratio <= 2 ? 'met' : 'MISSED'}`,
    });
  }
  const sw = r.sweep;
  if (sw) {
    const rate = (n: number) => `${fmt(n)}/s${n === sw.top ? ' (top step)' : ''}`;
    rows.push({
      benchmark: `smart-home open: highest rate with p99 < 50 ms (${sw.seconds} s steps)`,
      measured: `ours ${rate(sw.ours)}`,
      reference: `bare amqplib ${rate(sw.bare)}`,
      ratio: (sw.ours / Math.max(1, sw.bare)).toFixed(2),
      goal: 'ours/bare',
    });
  }
  const ws = r.ws;
  if (ws) {
    const projected = ws.projectedBytes / (512 * 1024 * 1024);
    rows.push(
      {
        benchmark: `smart-home websockets (${fmt(ws.ready)} of ${fmt(ws.wanted)} on one api)`,
        measured: `${fmt(ws.perSocketBytes / 1024, 2)} KB/socket, RSS ${mb(ws.rssBytes)} MB`,
        reference: `50,000 → ${mb(ws.projectedBytes)} MB of 512 MB`,
        ratio: projected.toFixed(2),
        goal: `<= 1.0 ${ws.ready === ws.wanted && projected <= 1 ? 'met' : 'MISSED'}`,
      },
      {
        benchmark: `smart-home event to every tenant (${fmt(ws.ready)} sockets)`,
        measured: `p99 ${fmt(ws.fanout.p99, 1)} ms (p50 ${fmt(ws.fanout.p50, 1)})`,
        reference: 'goal 1,000 ms',
        ratio: (ws.fanout.p99 / 1000).toFixed(2),
        goal: `<= 1.0 ${ws.pushed && ws.fanout.p99 <= 1000 ? 'met' : 'MISSED'}`,
      },
    );
  }
  return rows;
}

function intakeRows(r: IntakeResult): Row[] {
  return r.runs.map((x) => {
    const met = x.ratio >= 1 && x.ours.p99Ms < 50 && x.ours.errors === 0;
    return {
      benchmark: `intake ${x.source} (${x.processes} api, ${r.connections} connections, ${r.seconds} s)`,
      measured: `${fmt(x.ours.perSecond)} webhooks/s (p50 ${fmt(x.ours.p50Ms, 2)} ms, p99 ${fmt(x.ours.p99Ms, 2)} ms, ${x.ours.errors} errors)`,
      reference: `pgbench ${fmt(x.pgbench.tps)} tps (p99 ${fmt(x.pgbench.p99Ms, 2)} ms)`,
      ratio: x.ratio.toFixed(2),
      goal: `>= 1.0, p99 < 50 ms, 0 errors ${met ? 'met' : 'MISSED'}`,
    };
  });
}

function printTable(rows: readonly Row[]): void {
  const cols: (keyof Row)[] = ['benchmark', 'measured', 'reference', 'ratio', 'goal'];
  const width = Object.fromEntries(
    cols.map((c) => [c, Math.max(c.length, ...rows.map((r) => r[c].length))]),
  ) as Record<keyof Row, number>;
  const line = (r: Record<keyof Row, string>) =>
    cols
      .map((c) => r[c].padEnd(width[c]))
      .join('  ')
      .trimEnd();
  console.log('\n== summary ==');
  console.log(
    line({
      benchmark: 'benchmark',
      measured: 'measured',
      reference: 'reference',
      ratio: 'ratio',
      goal: 'goal',
    }),
  );
  console.log(cols.map((c) => '-'.repeat(width[c])).join('  '));
  for (const r of rows) console.log(line(r));
}

async function main(): Promise<void> {
  const names = selected(process.argv.slice(2));
  const options = flags(process.argv.slice(2));
  const rows: Row[] = [];
  // Imported on demand, so that running one benchmark loads only what it needs.
  for (const name of names) {
    if (name === 'engine') {
      const { engineConfig, runEngineBench } = await import('./engine.js');
      rows.push(...engineRows(await runEngineBench(engineConfig(options))));
    } else if (name === 'allio') {
      const { runAllioBench } = await import('./allio.js');
      rows.push(...allioRows(await runAllioBench()));
    } else if (name === 'allio-fairness') {
      const { runAllioFairnessBench } = await import('./allio-fairness.js');
      rows.push(...fairnessRows(await runAllioFairnessBench()));
    } else if (name === 'intake') {
      const { runIntakeBench } = await import('./intake.js');
      rows.push(...intakeRows(await runIntakeBench()));
    } else {
      const { runSmartHomeBench } = await import('./smart-home.js');
      const all = name === 'smart-home';
      rows.push(
        ...smartHomeRows(
          await runSmartHomeBench({
            roundTrip: all || name === 'open-door',
            sweep: all || name === 'open-door',
            webSockets: all || name === 'websockets',
          }),
        ),
      );
    }
  }
  printTable(rows);
}

main().then(
  () => {
    process.exitCode = 0;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
