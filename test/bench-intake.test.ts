// The intake benchmark runs end to end in a tiny configuration (1 s, no warm-up, 2 connections,
// one api process): wrk and pgbench are found, both webhook routes answer 200 and every 200 has its row.
// Its figures are not checked: a benchmark is not a timed test.
import { afterAll, beforeAll, expect, test } from '@jest/globals';

const TINY = {
  BENCH_INTAKE_SECONDS: '1',
  BENCH_INTAKE_CONNECTIONS: '2',
  BENCH_INTAKE_PROCESSES: '1',
  BENCH_INTAKE_WARMUP_SECONDS: '0',
  BENCH_INTAKE_LOG_LEVEL: 'warn',
};
const saved: Record<string, string | undefined> = {};

beforeAll(() => {
  for (const [k, v] of Object.entries(TINY)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
});
afterAll(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

test('npm run bench -- intake runs in a tiny configuration and reports both webhooks against pgbench', async () => {
  const { runIntakeBench } = await import('../bench/intake.js');
  const r = await runIntakeBench();
  expect(r.runs.map((x) => [x.source, x.processes])).toEqual([
    ['allio', 1],
    ['warehouse', 1],
  ]);
  for (const x of r.runs) {
    expect(x.ours.ok).toBeGreaterThan(0);
    expect(x.ours.rows).toBeGreaterThanOrEqual(x.ours.ok);
    expect(x.pgbench.tps).toBeGreaterThan(0);
    expect(x.pgbench.p99Ms).toBeGreaterThan(0);
    expect(x.ratio).toBeCloseTo(x.ours.perSecond / x.pgbench.tps, 6);
  }
}, 180_000);
