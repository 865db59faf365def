// Every fuzz target, in the order the suite and `npm run fuzz` run them, and how many cases each gets.
import type { Target } from './engine.js';
import { authTarget } from './auth-target.js';
import { HTTP_TARGETS } from './http-targets.js';
import { repliesTarget, statusTarget } from './queue-targets.js';
import { wsTarget } from './ws-target.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- targets differ in their case type
export const TARGETS: Target<any>[] = [
  ...HTTP_TARGETS,
  wsTarget,
  authTarget,
  repliesTarget,
  statusTarget,
];

/** Cases per target: FUZZ_RUNS, else the given default (small in `npm test`, 10,000 in `npm run fuzz`). */
export function runsPerTarget(fallback: number): number {
  const n = Number(process.env.FUZZ_RUNS);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

/** The targets FUZZ_TARGET names (a case-insensitive part of the name), else all. */
export function selectedTargets(): typeof TARGETS {
  const want = process.env.FUZZ_TARGET?.trim().toLowerCase();
  return want ? TARGETS.filter((t) => t.name.toLowerCase().includes(want)) : TARGETS;
}

export function fuzzSeed(): number | undefined {
  const n = Number(process.env.FUZZ_SEED);
  return process.env.FUZZ_SEED && Number.isInteger(n) ? n : undefined;
}
