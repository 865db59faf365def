// Entry point of `npm run bench`: runs the engine and ALLIO benchmarks (or those named in argv,
// e.g. `npm run bench -- engine`) and prints a summary table of the ratios.
import type { AllioResult } from './allio.js';
import type { EngineResult } from './engine.js';
import type { IntakeResult } from './intake.js';
import type { SmartHomeResult } from './smart-home.js';
import { fmt } from './support.js';

const BENCHMARKS = ['engine', 'allio', 'smart-home', 'intake'] as const;
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
  const errors = (x: SmartHomeResult['ours']) => Object.values(x.errors).reduce((a, b) => a + b, 0);
  const mb = (b: number) => fmt(b / (1024 * 1024));
  return [
    {
      benchmark: `smart-home open round trip (${r.rate}/s, ${r.seconds} s)`,
      measured: `ours p99 ${fmt(r.ours.latency.p99, 2)} ms (p50 ${fmt(r.ours.latency.p50, 2)}, ${errors(r.ours)} errors)`,
      reference: `bare amqplib p99 ${fmt(r.bare.latency.p99, 2)} ms`,
      ratio: r.ratio.toFixed(2),
      goal: `<= 2.0 ${r.ratio <= 2 ? 'met' : 'MISSED'}`,
    },
    {
      benchmark: `smart-home websockets (${fmt(r.ws.wanted)} on one api)`,
      measured: `${fmt(r.ws.ready)} ready, RSS ${mb(r.ws.rssBytes)} MB`,
      reference: 'goal 300 MB',
      ratio: (r.ws.rssBytes / (300 * 1024 * 1024)).toFixed(2),
      goal: `< 300 MB ${r.ws.ready === r.ws.wanted && r.ws.rssBytes < 300 * 1024 * 1024 ? 'met' : 'MISSED'}`,
    },
  ];
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
    } else if (name === 'intake') {
      const { runIntakeBench } = await import('./intake.js');
      rows.push(...intakeRows(await runIntakeBench()));
    } else {
      const { runSmartHomeBench } = await import('./smart-home.js');
      rows.push(...smartHomeRows(await runSmartHomeBench()));
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
