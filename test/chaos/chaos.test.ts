// The short chaos pass of `npm test`: the whole stack (own PostgreSQL, Redis and RabbitMQ; api ×2,
// allio-sync ×3, mq-bridge ×2, kitchen ×2 as built processes; Prometheus with the chart's rules)
// under traffic, one round of the fault kinds below on a fixed seed, then every invariant. The
// partition needs root (network namespaces); elsewhere it is reported as skipped, with the reason.
// The rollout (nine pods replaced) is left to `npm run chaos`, the soak, which runs every kind;
// CHAOS_SEED replays another schedule here, CHAOS_FAULTS=… picks the kinds. Progress goes to
// stderr as it happens, the whole log and every pod's log to the run dir it names.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, test } from '@jest/globals';
import type { FaultKind } from './faults.js';
import { runChaos } from './scenario.js';

const SEED = Number(process.env.CHAOS_SEED ?? '20261201');
const KINDS: FaultKind[] = process.env.CHAOS_FAULTS
  ? (process.env.CHAOS_FAULTS.split(',') as FaultKind[])
  : [
      'crash',
      'pause',
      'partition',
      'redis-restart',
      'postgres-restart',
      'postgres-kill-backends',
      'rabbitmq-restart',
      'partner-silence',
      'allio-outage',
    ];

test('under crashes, pauses, a partition and server restarts nothing is lost, doubled or left hanging, and the alerts fire and resolve', async () => {
  const runDir = mkdtempSync(path.join(tmpdir(), 'chaos-test-'));
  process.stderr.write(`chaos short pass, seed ${SEED}, logs in ${runDir}\n`);
  const result = await runChaos({
    seed: SEED,
    faultMs: 1,
    warmupMs: 8_000,
    runDir,
    kinds: KINDS,
    gapMs: [1_000, 3_000],
    smartHomeTenants: 8,
    kitchenTenants: 3,
    log: (l) => process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${l}\n`),
  });
  const skipped = result.skipped.length ? `; SKIPPED here: ${result.skipped.join('; ')}` : '';
  process.stderr.write(
    `\n${result.table}\n\n(${result.seconds.toFixed(0)} s, seed ${SEED}, logs in ${runDir}${skipped})\n`,
  );
  expect(
    result.checks
      .filter((c) => !c.ok)
      .map((c) => `${c.name}: ${c.detail}; ${(c.examples ?? []).join('; ')}`),
  ).toEqual([]);
}, 900_000);
