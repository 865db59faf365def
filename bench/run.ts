// Entry point of `npm run bench`: runs the engine and ALLIO benchmarks (or those named in argv,
// e.g. `npm run bench -- engine`; `open-door` and `websockets` are parts of `smart-home`) and prints a summary table of the ratios.
import type { AllioResult } from './allio.js';
import type { EngineResult } from './engine.js';
import type { RoundTripResult, SmartHomeResult } from './smart-home.js';
import { fmt } from './support.js';

const BENCHMARKS = ['engine', 'allio', 'smart-home', 'open-door', 'websockets'] as const;
type Name = (typeof BENCHMARKS)[number];

function selected(argv: readonly string[]): Name[] {
  if (argv.length === 0) return [...BENCHMARKS];
  const unknown = argv.filter((a) => !(BENCHMARKS as readonly string[]).includes(a));
  if (unknown.length > 0) throw new Error(`unknown benchmark ${unknown.join(', ')}; choose from ${BENCHMARKS.join(', ')}`);
  return BENCHMARKS.filter((b) => argv.includes(b));
}

interface Row {
  benchmark: string;
  measured: string;
  reference: string;
  ratio: string;
  goal: string;
}

function engineRow(r: EngineResult): Row {
  return {
    benchmark: `engine (${fmt(r.jobs)} no-op jobs)`,
    measured: `ours ${fmt(r.ours.perSecond)} jobs/s`,
    reference: `graphile-worker ${fmt(r.graphile.perSecond)} jobs/s`,
    ratio: r.ratio.toFixed(2),
    goal: 'ours/graphile-worker',
  };
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

function smartHomeRows(r: SmartHomeResult): Row[] {
  const errors = (x: RoundTripResult) => Object.values(x.errors).reduce((a, b) => a + b, 0);
  const mb = (b: number) => fmt(b / (1024 * 1024));
  const rows: Row[] = [];
  const rt = r.roundTrip;
  if (rt)
    rows.push({
      benchmark: `smart-home open round trip (${r.rate}/s, ${r.seconds} s)`,
      measured: `ours p99 ${fmt(rt.ours.latency.p99, 2)} ms (p50 ${fmt(rt.ours.latency.p50, 2)}, ${errors(rt.ours)} errors)`,
      reference: `bare amqplib p99 ${fmt(rt.bare.latency.p99, 2)} ms`,
      ratio: rt.ratio.toFixed(2),
      goal: `<= 2.0 ${rt.ratio <= 2 ? 'met' : 'MISSED'}`,
    });
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

function printTable(rows: readonly Row[]): void {
  const cols: (keyof Row)[] = ['benchmark', 'measured', 'reference', 'ratio', 'goal'];
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(c.length, ...rows.map((r) => r[c].length))])) as Record<
    keyof Row,
    number
  >;
  const line = (r: Record<keyof Row, string>) => cols.map((c) => r[c].padEnd(width[c])).join('  ').trimEnd();
  console.log('\n== summary ==');
  console.log(line({ benchmark: 'benchmark', measured: 'measured', reference: 'reference', ratio: 'ratio', goal: 'goal' }));
  console.log(cols.map((c) => '-'.repeat(width[c])).join('  '));
  for (const r of rows) console.log(line(r));
}

async function main(): Promise<void> {
  const names = selected(process.argv.slice(2));
  const rows: Row[] = [];
  // Imported on demand, so that running one benchmark loads only what it needs.
  for (const name of names) {
    if (name === 'engine') {
      const { runEngineBench } = await import('./engine.js');
      rows.push(engineRow(await runEngineBench()));
    } else if (name === 'allio') {
      const { runAllioBench } = await import('./allio.js');
      rows.push(...allioRows(await runAllioBench()));
    } else {
      const { runSmartHomeBench } = await import('./smart-home.js');
      const all = name === 'smart-home';
      rows.push(...smartHomeRows(await runSmartHomeBench({ roundTrip: all || name === 'open-door', sweep: all || name === 'open-door', webSockets: all || name === 'websockets' })));
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
