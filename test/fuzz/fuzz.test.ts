// The fuzz suite at CI size: every target (every api route, the WebSocket upgrade, both webhooks,
// the token endpoint, both queue consumers) gets a bounded number of hostile cases against the built
// services in child processes. `npm run fuzz` runs the same targets with 10,000 cases each.
// FUZZ_RUNS, FUZZ_TARGET and FUZZ_SEED work here too (e.g. FUZZ_TARGET=websocket).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { runTarget, table, type TargetStats } from './engine.js';
import { startFuzzStack, type FuzzStack } from './stack.js';
import { fuzzSeed, runsPerTarget, selectedTargets } from './targets.js';

/** 60 cases per target keep the suite near a minute on two cores, start-up included. */
const RUNS = runsPerTarget(60);
const results: TargetStats[] = [];
let stack: FuzzStack;

beforeAll(async () => {
  stack = await startFuzzStack({ label: 'fuzz' });
}, 120_000);

afterAll(async () => {
  if (results.length > 0) console.log(`fuzz (${RUNS} cases per target):\n${table(results)}`);
  await stack?.close();
}, 60_000);

describe('hostile input never crashes, exhausts or fools a service', () => {
  test.each(selectedTargets().map((t) => [t.name, t] as const))(
    '%s: no 5xx, no process death, nothing stored for a rejected input, small errors, bounded memory',
    async (_name, target) => {
      const stats = await runTarget(stack, target, {
        numRuns: RUNS,
        mode: 'assert',
        seed: fuzzSeed(),
      });
      results.push(stats);
      expect(stats.violations).toEqual([]);
    },
    240_000,
  );
});
