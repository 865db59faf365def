// Unit tests for the pure period calculations of leaderless periodic work.
import { describe, expect, test } from '@jest/globals';
import { dailyPeriod } from './periodic.js';

describe('dailyPeriod', () => {
  test('the key is the UTC date and dueAt is that date at HH:MM UTC', () => {
    const p = dailyPeriod(new Date('2025-10-30T17:08:10.123Z'), '03:00');
    expect(p.key).toBe('2025-10-30');
    expect(p.dueAt.toISOString()).toBe('2025-10-30T03:00:00.000Z');
  });

  test('dueAt may lie later the same day than now', () => {
    expect(dailyPeriod(new Date('2025-10-30T01:00:00Z'), '22:30').dueAt.toISOString()).toBe(
      '2025-10-30T22:30:00.000Z',
    );
  });

  test('23:59Z and 00:01Z the next day give different keys', () => {
    const late = dailyPeriod(new Date('2025-10-30T23:59:00Z'), '03:00');
    const early = dailyPeriod(new Date('2025-10-31T00:01:00Z'), '03:00');
    expect(late.key).toBe('2025-10-30');
    expect(early.key).toBe('2025-10-31');
    expect(early.dueAt.getTime() - late.dueAt.getTime()).toBe(86_400_000);
  });

  test('the same UTC day always gives the same period, whatever the time', () => {
    const a = dailyPeriod(new Date('2025-10-30T00:00:00Z'), '03:00');
    const b = dailyPeriod(new Date('2025-10-30T23:59:59.999Z'), '03:00');
    expect(a).toEqual(b);
  });

  test('the key follows UTC, not Moscow time: 22:00Z on Oct 30 is already Oct 31 in Moscow but keys Oct 30', () => {
    expect(dailyPeriod(new Date('2025-10-30T22:00:00Z'), '03:00').key).toBe('2025-10-30');
  });
});
