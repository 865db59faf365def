// Unit tests of the purge rules: ages, per-table days, floors, and the statement's shape.
import { describe, expect, test } from '@jest/globals';
import { parseTableDays, purgeBatchSql, purgeRules } from './policies.js';

describe('purgeRules', () => {
  const rules = purgeRules({ doneDays: 3, failedDays: 10, tableDays: { allio_webhook: 1 } });
  const days = (table: string, kind: string) =>
    rules.find((r) => r.table === table && r.kind === kind)?.days;

  test("done rows keep RETENTION_DAYS or their table's days, failed rows RETENTION_FAILED_DAYS", () => {
    expect(days('allio_tasks', 'done')).toBe(3);
    expect(days('allio_webhook', 'done')).toBe(1);
    expect(days('allio_tasks', 'failed')).toBe(10);
  });

  test('a table the code reads back keeps at least its floor, whatever the configuration', () => {
    expect(days('kitchen_warehouse_events', 'done')).toBe(7);
    expect(days('periodic_runs', 'done')).toBe(32);
    expect(days('periodic_runs', 'failed')).toBe(32);
  });

  test('never a pending or in-progress row: every rule is about done or failed rows only', () => {
    for (const r of rules) {
      expect(r.where).toMatch(/^(t\.status = [23]|\(t\.status is null or t\.status = 3\))$/);
    }
  });

  test("the DELETE re-checks the row's state and age on the row it locks, and skips locked rows", () => {
    const sql = purgeBatchSql(rules.find((r) => r.table === 'smart_home_requests')!);
    expect(sql).toMatch(
      /for update skip locked\)\)\s+and t\.status = 2 and t\.updated_at < now\(\) - make_interval\(days => \?\)$/,
    );
    expect(sql).toContain('n.id > t.id');
  });
});

describe('parseTableDays', () => {
  test('reads table=days pairs and names every problem', () => {
    expect(parseTableDays(' allio_tasks = 5 ,kitchen_outbox=9,')).toEqual({
      ok: true,
      value: { allio_tasks: 5, kitchen_outbox: 9 },
    });
    expect(parseTableDays('periodic_runs=31,nope=3,allio_tasks=0')).toEqual({
      ok: false,
      problems: [
        expect.stringContaining('periodic_runs keeps its rows from 32'),
        expect.stringContaining('nope is not a purged table'),
        expect.stringContaining('allio_tasks keeps its rows from 1'),
      ],
    });
  });
});
