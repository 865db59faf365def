// Entry point of `npm run bench`: runs the engine and ALLIO benchmarks (or those named in argv,
// e.g. `npm run bench -- engine`) and prints a summary table of the ratios.
import type { AllioResult } from './allio.js';
import type { EngineResult } from './engine.js';
import { fmt } from './support.js';

const BENCHMARKS = ['engine', 'allio'] as const;
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
    } else {
      const { runAllioBench } = await import('./allio.js');
      rows.push(...allioRows(await runAllioBench()));
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
