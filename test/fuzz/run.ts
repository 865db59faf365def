// `npm run fuzz`: every target against the built services, 10,000 cases each (FUZZ_RUNS overrides,
// FUZZ_TARGET picks targets by name, FUZZ_SEED replays), all cases run even after a violation,
// then a table of what happened. Exits 1 when any invariant broke.
import { runTarget, table, type TargetStats } from './engine.js';
import { startFuzzStack } from './stack.js';
import { fuzzSeed, runsPerTarget, selectedTargets } from './targets.js';

const runs = runsPerTarget(10_000);
const targets = selectedTargets();
if (targets.length === 0) {
  process.stderr.write(`no fuzz target matches FUZZ_TARGET=${process.env.FUZZ_TARGET}\n`);
  process.exit(2);
}
const stack = await startFuzzStack({ label: 'fuzzrun' });
const results: TargetStats[] = [];
try {
  for (const t of targets) {
    process.stdout.write(`fuzzing ${t.name}: ${runs} cases…\n`);
    const r = await runTarget(stack, t, { numRuns: runs, mode: 'census', seed: fuzzSeed() });
    results.push(r);
    for (const v of r.violations) process.stdout.write(`  ✗ ${v}\n`);
  }
} finally {
  await stack.close();
}

process.stdout.write(`\n${table(results)}\n`);
const failed = results.filter((r) => r.violations.length > 0);
if (failed.length > 0) {
  process.stdout.write(
    `\nFirst violation per target (replay: FUZZ_TARGET=<name> FUZZ_SEED=<seed> FUZZ_RUNS=<index+1> npm run fuzz):\n`,
  );
  for (const r of failed) {
    process.stdout.write(
      `- ${r.target}: seed ${r.firstViolation?.seed ?? '?'}, case ${r.firstViolation?.index ?? '?'}: ${r.violations[0]}\n`,
    );
    if (r.firstViolation) {
      process.stdout.write(`  the case: ${r.firstViolation.case.slice(0, 2_000)}\n`);
    }
  }
}
process.exit(failed.length > 0 ? 1 : 0);
