// Unit tests for retry and idle-polling backoff maths (the random source is injected).
import { describe, expect, test } from '@jest/globals';
import {
  DEFAULT_BACKOFF,
  nextIdleDelayMs,
  RETRY_AFTER_CEILING_MS,
  retryDelayMs,
  type BackoffPolicy,
} from './backoff.js';

const policy: BackoffPolicy = { baseMs: 1_000, maxMs: 60_000, factor: 2 };
const low = () => 0;
const high = () => 1;
const mid = () => 0.5;

describe('retryDelayMs', () => {
  test('grows exponentially with the attempt: with random 1 the delay is base * factor^(attempt-1)', () => {
    expect([1, 2, 3, 4, 5].map((a) => retryDelayMs(a, policy, undefined, high))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000,
    ]);
  });

  test('with random 0 the delay is half the exponential delay, never zero', () => {
    expect([1, 2, 3].map((a) => retryDelayMs(a, policy, undefined, low))).toEqual([
      500, 1_000, 2_000,
    ]);
  });

  test('stays within [exp/2, exp] for any random value in [0, 1]', () => {
    for (let attempt = 1; attempt <= 10; attempt++) {
      const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
      for (const r of [0, 0.1, 0.5, 0.999, 1]) {
        const d = retryDelayMs(attempt, policy, undefined, () => r);
        expect(d).toBeGreaterThanOrEqual(exp / 2);
        expect(d).toBeLessThanOrEqual(exp);
      }
    }
  });

  test('honours the factor of the policy', () => {
    expect(retryDelayMs(3, { baseMs: 100, maxMs: 100_000, factor: 3 }, undefined, high)).toBe(900);
  });

  test('is capped by maxMs once the exponential delay passes it', () => {
    expect(retryDelayMs(7, policy, undefined, high)).toBe(60_000);
    expect(retryDelayMs(50, policy, undefined, high)).toBe(60_000);
    expect(retryDelayMs(50, policy, undefined, low)).toBe(30_000);
  });

  test('a huge attempt number does not overflow into NaN or Infinity', () => {
    expect(retryDelayMs(10_000, policy, undefined, mid)).toBe(45_000);
  });

  test('attempt 0 or below is treated as the first retry', () => {
    expect(retryDelayMs(0, policy, undefined, high)).toBe(1_000);
    expect(retryDelayMs(-3, policy, undefined, high)).toBe(1_000);
  });

  test('a Retry-After longer than the jittered delay wins', () => {
    expect(retryDelayMs(1, policy, 10_000, high)).toBe(10_000);
  });

  test('a Retry-After shorter than the jittered delay is ignored', () => {
    expect(retryDelayMs(3, policy, 100, low)).toBe(2_000);
    expect(retryDelayMs(3, policy, 0, high)).toBe(4_000);
  });

  test('a Retry-After longer than maxMs is honoured in full', () => {
    expect(retryDelayMs(1, policy, 120_000, low)).toBe(120_000);
  });

  test("a Retry-After of years is held to the policy's retryAfterMaxMs, so a partner cannot park a task", () => {
    expect(retryDelayMs(1, { ...policy, retryAfterMaxMs: 90_000 }, 99_999_999_000, high)).toBe(
      90_000,
    );
    expect(retryDelayMs(1, { ...policy, retryAfterMaxMs: 90_000 }, 80_000, low)).toBe(80_000);
  });

  test('without retryAfterMaxMs a Retry-After is held to the one-hour ceiling, and Infinity or NaN never leak out', () => {
    expect(RETRY_AFTER_CEILING_MS).toBe(3_600_000);
    expect(retryDelayMs(1, policy, 99_999_999_000, high)).toBe(RETRY_AFTER_CEILING_MS);
    expect(retryDelayMs(1, policy, Infinity, high)).toBe(RETRY_AFTER_CEILING_MS);
    expect(retryDelayMs(2, policy, Number.NaN, high)).toBe(2_000);
  });

  test('never exceeds max(maxMs, retryAfterMs)', () => {
    for (const attempt of [1, 5, 10, 30]) {
      for (const retryAfter of [undefined, 0, 500, 59_999, 60_000, 90_000]) {
        for (const random of [low, mid, high]) {
          const d = retryDelayMs(attempt, policy, retryAfter, random);
          expect(d).toBeLessThanOrEqual(Math.max(policy.maxMs, retryAfter ?? 0));
        }
      }
    }
  });

  test('returns whole milliseconds', () => {
    expect(
      Number.isInteger(
        retryDelayMs(1, { baseMs: 333, maxMs: 10_000, factor: 2 }, undefined, () => 0.123),
      ),
    ).toBe(true);
  });

  test('the default policy starts at 0.5–1 s and is capped at 5 minutes', () => {
    expect(retryDelayMs(1, DEFAULT_BACKOFF, undefined, low)).toBe(500);
    expect(retryDelayMs(1, DEFAULT_BACKOFF, undefined, high)).toBe(1_000);
    expect(retryDelayMs(40, DEFAULT_BACKOFF, undefined, high)).toBe(300_000);
  });
});

describe('nextIdleDelayMs', () => {
  test('starts at min when there was no delay yet', () => {
    expect(nextIdleDelayMs(0, 100, 5_000)).toBe(100);
    expect(nextIdleDelayMs(-1, 100, 5_000)).toBe(100);
  });

  test('doubles from min up to max and stays at max', () => {
    const seen: number[] = [];
    let d = 0;
    for (let i = 0; i < 9; i++) {
      d = nextIdleDelayMs(d, 100, 5_000);
      seen.push(d);
    }
    expect(seen).toEqual([100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000]);
  });

  test('a current delay below min is raised to min', () => {
    expect(nextIdleDelayMs(10, 100, 5_000)).toBe(100);
  });
});
