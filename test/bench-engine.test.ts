// `npm run bench -- engine` in its tiny configuration: every scenario (small and large queues,
// finished history, pgbench on the engine's own statements, graphile-worker) runs to the end and
// yields figures. Benchmarks are not timed tests: no figure is held to its goal here.
import { expect, test } from '@jest/globals';
import { runEngineBench, TINY_ENGINE_CONFIG, engineConfig } from '../bench/engine.js';

test('the engine benchmark runs every scenario in its tiny configuration and drains every row', async () => {
  const r = await runEngineBench(TINY_ENGINE_CONFIG);
  const c = TINY_ENGINE_CONFIG;
  for (const d of [
    r.base,
    r.due,
    r.pgbench,
    r.pgbenchRows,
    r.history,
    ...r.graphile.flatMap((g) => [g.ours, g.graphile]),
  ]) {
    expect(d.perSecond).toBeGreaterThan(0);
  }
  // Ours and both pgbench scripts took equal turns on the large queue.
  expect(r.pgbench.rows).toBe(r.due.rows);
  expect(r.pgbenchRows.rows).toBe(r.due.rows);
  expect(3 * r.due.rows).toBeLessThanOrEqual(c.due);
  expect(r.history.loaded).toBe(c.finished + c.working);
  // Every row of each table was claimed once and completed once: two updates, never HOT (the
  // status is in the due index's predicate).
  expect(r.due.table.updates).toBe(2 * c.due);
  expect(r.history.table.updates).toBe(2 * c.working);
  expect(r.due.table.hotUpdates).toBe(0);
  expect(r.graphile.map((g) => g.jobs)).toEqual(c.graphile);
  // Dead entries at the head of the due index cost the next claim pages until a VACUUM.
  expect(r.claimBuffers.drained).toBeGreaterThan(r.claimBuffers.vacuumed);
}, 300_000);

test('engine flags override the defaults and unknown ones are refused', () => {
  expect(
    engineConfig(
      new Map([
        ['due', '2_000'],
        ['graphile', ''],
      ]),
    ),
  ).toMatchObject({ due: 2000, graphile: [] });
  expect(engineConfig(new Map([['tiny', '']])).due).toBe(TINY_ENGINE_CONFIG.due);
  expect(() => engineConfig(new Map([['rows', '5']]))).toThrow(/unknown flag --rows/);
  expect(() => engineConfig(new Map([['due', '-1']]))).toThrow(/positive integers/);
});
