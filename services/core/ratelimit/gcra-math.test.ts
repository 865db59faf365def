// Unit tests for the GCRA emission interval (importing limiter.ts also loads gcra.lua via import.meta.url).
import { describe, expect, test } from '@jest/globals';
import { emissionIntervalMs } from './limiter.js';

describe('emissionIntervalMs', () => {
  test('{ratePerSecond: 2} spaces requests 500 ms apart', () => {
    expect(emissionIntervalMs({ ratePerSecond: 2 })).toBe(500);
  });

  test('a safetyMs of 15 is added to every slot: 515 ms', () => {
    expect(emissionIntervalMs({ ratePerSecond: 2, safetyMs: 15 })).toBe(515);
  });

  test('burst does not change the spacing', () => {
    expect(emissionIntervalMs({ ratePerSecond: 2, burst: 5 })).toBe(500);
  });

  test('fractional and high rates give the matching interval', () => {
    expect(emissionIntervalMs({ ratePerSecond: 0.5 })).toBe(2_000);
    expect(emissionIntervalMs({ ratePerSecond: 1_000 })).toBe(1);
  });

  test('at the ALLIO defaults (2/s, 15 ms safety) at most 2 requests start in any second', () => {
    expect(Math.floor(1000 / emissionIntervalMs({ ratePerSecond: 2, safetyMs: 15 })) + 1).toBeLessThanOrEqual(2);
  });
});
