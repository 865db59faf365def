// The allio-fairness benchmark runs end to end in a tiny configuration (ALLIO at 20 requests/s,
// seconds instead of minutes): CI checks that it works, not its figures, except those that must
// hold at any size — every webhook reaches the CRM, ALLIO never refuses a request, and both egress
// IPs carry records.
import { describe, expect, test } from '@jest/globals';
import { runAllioFairnessBench } from '../bench/allio-fairness.js';

describe('allio-fairness benchmark', () => {
  test('a tiny run prints a latency row per integration, loses no webhook and breaks no quota', async () => {
    const r = await runAllioFairnessBench({
      rate: 20,
      bulkIds: 20_000,
      seconds: 5,
      webhooksPerSecond: 5,
      ipSeconds: 3,
    });
    expect({
      rows: r.rows.map((row) => row.integration),
      everyClientSent: r.rows.slice(1).every((row) => row.webhooks > 0 && Number.isFinite(row.p99)),
      bulkServed: (r.rows[0]?.requests ?? 0) > 0,
      lost: r.lost,
      violations: r.violations + r.ipViolations,
      bothIpsCarry: r.oneIp > 0 && r.twoIps > r.oneIp,
    }).toEqual({
      rows: ['bulk', ...Array.from({ length: 9 }, (_, i) => `client-${i + 1}`)],
      everyClientSent: true,
      bulkServed: true,
      lost: 0,
      violations: 0,
      bothIpsCarry: true,
    });
  }, 120_000);
});
