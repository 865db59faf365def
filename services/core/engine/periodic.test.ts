// Unit tests for the pure period calculations of leaderless periodic work.
import { describe, expect, test } from '@jest/globals';
import { dailyPeriod, hourlyPeriod } from './periodic.js';

describe('dailyPeriod', () => {
  test('the key is the UTC date and dueAt is that date at HH:MM UTC', () => {
    const p = dailyPeriod(new Date('2025-10-30T17:08:10.123Z'), '03:00');
    expect(p.key).toBe('2025-10-30');
    expect(p.dueAt.toISOString()).toBe('2025-10-30T03:00:00.000Z');
  });

  test('dueAt may lie later the same day than now', () => {
    expect(dailyPeriod(new Date('2025-10-30T01:00:00Z'), '22:30').dueAt.toISOString()).toBe('2025-10-30T22:30:00.000Z');
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

describe('hourlyPeriod', () => {
  test("the key is 'YYYY-MM-DDTHH' of the UTC hour and dueAt is the end of that hour", () => {
    const p = hourlyPeriod(new Date('2025-10-30T17:08:10.123Z'));
    expect(p.key).toBe('2025-10-30T17');
    expect(p.dueAt.toISOString()).toBe('2025-10-30T18:00:00.000Z');
  });

  test('the last hour of a day is due at midnight of the next day', () => {
    const p = hourlyPeriod(new Date('2025-12-31T23:59:59.999Z'));
    expect(p.key).toBe('2025-12-31T23');
    expect(p.dueAt.toISOString()).toBe('2026-01-01T00:00:00.000Z');
  });

  test('the start and the last millisecond of an hour share a period; the next hour does not', () => {
    expect(hourlyPeriod(new Date('2025-10-30T17:00:00.000Z'))).toEqual(hourlyPeriod(new Date('2025-10-30T17:59:59.999Z')));
    expect(hourlyPeriod(new Date('2025-10-30T18:00:00.000Z')).key).toBe('2025-10-30T18');
  });

  test('does not modify the Date it is given', () => {
    const now = new Date('2025-10-30T17:08:10.123Z');
    hourlyPeriod(now);
    expect(now.toISOString()).toBe('2025-10-30T17:08:10.123Z');
  });
});
