// `npm run chaos`: the soak. CHAOS_MINUTES of faults (default 10) after a warm-up, CHAOS_SEED to
// replay a schedule (default: a fresh one, printed), CHAOS_FAULTS=crash,pause,… to pick kinds, then
// the invariant table. Exits 1 when any invariant broke. Pod logs and Prometheus' files stay in
// CHAOS_DIR (default a temp dir, printed).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FAULT_KINDS, type FaultKind } from './faults.js';
import { runChaos } from './scenario.js';

const seed = process.env.CHAOS_SEED
  ? Number(process.env.CHAOS_SEED)
  : Math.floor(Math.random() * 2 ** 31);
const minutes = Number(process.env.CHAOS_MINUTES ?? '10');
const kinds =
  process.env.CHAOS_FAULTS === 'none'
    ? []
    : (process.env.CHAOS_FAULTS?.split(',')
        .map((k) => k.trim())
        .filter(Boolean) as FaultKind[] | undefined);
const unknown = (kinds ?? []).filter((k) => ![...FAULT_KINDS, 'allio-outage'].includes(k));
if (!Number.isInteger(seed) || !(minutes > 0) || unknown.length > 0) {
  process.stderr.write(
    `CHAOS_SEED must be an integer, CHAOS_MINUTES a positive number, CHAOS_FAULTS of ${[...FAULT_KINDS, 'allio-outage'].join(', ')}${unknown.length ? ` (not: ${unknown.join(', ')})` : ''}\n`,
  );
  process.exit(2);
}
// ^C or a kill: exit through process.exit, whose handlers stop every pod and server of the run.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
const runDir = process.env.CHAOS_DIR ?? mkdtempSync(path.join(tmpdir(), 'chaos-run-'));
process.stdout.write(`chaos soak: ${minutes} min of faults, seed ${seed}, logs in ${runDir}\n`);
const result = await runChaos({
  seed,
  faultMs: minutes * 60_000,
  warmupMs: 20_000,
  runDir,
  kinds,
  smartHomeTenants: 16,
  kitchenTenants: 6,
});
const skipped = result.skipped.length ? `; SKIPPED here: ${result.skipped.join('; ')}` : '';
process.stdout.write(
  `\n${result.table}\n\n${result.ok ? 'all invariants held' : 'INVARIANTS BROKEN'}${skipped} (${result.seconds.toFixed(0)} s; replay: CHAOS_SEED=${seed} CHAOS_MINUTES=${minutes} npm run chaos)\n`,
);
process.exit(result.ok ? 0 : 1);
