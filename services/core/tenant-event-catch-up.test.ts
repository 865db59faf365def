// Unit tests for the re-delivery after a lost subscription: the window it reads back, the bounded
// queries it makes whatever the number of tenants, and its one log line.
import { expect, test } from '@jest/globals';
import { createLogger } from './logger.js';
import {
  CATCH_UP_MARGIN_MS,
  catchUpWindowMs,
  EVENTS_PER_QUERY,
  MAX_CATCH_UP_MS,
  TENANTS_PER_QUERY,
  TenantEventCatchUp,
  type TenantEventSource,
} from './tenant-event-catch-up.js';
import type { AnyTenantEvent } from './tenant-events.js';

function harness() {
  const lines: Array<{
    level: string;
    msg: string;
    redelivered?: Record<string, number>;
    truncated?: string[];
    lookbackMs?: number;
  }> = [];
  const logger = createLogger(
    { level: 'debug', name: 't' },
    { write: (l: string) => void lines.push(JSON.parse(l)) },
  );
  const delivered: Array<[string, AnyTenantEvent]> = [];
  const counted: Record<string, number> = {};
  const catchUp = new TenantEventCatchUp({
    deliver: (tenantId, event) => delivered.push([tenantId, event]),
    logger,
    redelivered: (type, n) => (counted[type] = (counted[type] ?? 0) + n),
  });
  return { lines, delivered, counted, catchUp };
}

test('the window is the loss plus the margin, and never more than the cap', () => {
  expect(catchUpWindowMs(0)).toBe(CATCH_UP_MARGIN_MS);
  expect(catchUpWindowMs(1_234.2)).toBe(1_235 + CATCH_UP_MARGIN_MS);
  expect(catchUpWindowMs(-5)).toBe(CATCH_UP_MARGIN_MS);
  expect(catchUpWindowMs(24 * 3600_000)).toBe(MAX_CATCH_UP_MS);
});

test('each source is read for every tenant in bounded batches, its events delivered in order, counted, and logged in one line', async () => {
  const { lines, delivered, counted, catchUp } = harness();
  const calls: Array<{ tenants: number; lookbackMs: number; limit: number }> = [];
  const source: TenantEventSource = {
    type: 'command.result',
    recent: async (tenants, lookbackMs, limit) => {
      calls.push({ tenants: tenants.length, lookbackMs, limit });
      return tenants
        .filter((t) => t.endsWith('7'))
        .map((t) => ({
          tenantId: t,
          event: { type: 'command.result', at: 'x', commandId: `c-${t}` },
        }));
    },
  };
  catchUp.add(source);
  const tenants = Array.from({ length: TENANTS_PER_QUERY * 2 + 1 }, (_, i) => `t${i}`);
  await catchUp.run(tenants, 10_000);
  expect(calls).toEqual([
    {
      tenants: TENANTS_PER_QUERY,
      lookbackMs: 10_000 + CATCH_UP_MARGIN_MS,
      limit: EVENTS_PER_QUERY,
    },
    {
      tenants: TENANTS_PER_QUERY,
      lookbackMs: 10_000 + CATCH_UP_MARGIN_MS,
      limit: EVENTS_PER_QUERY,
    },
    { tenants: 1, lookbackMs: 10_000 + CATCH_UP_MARGIN_MS, limit: EVENTS_PER_QUERY },
  ]);
  const expected = tenants.filter((t) => t.endsWith('7'));
  expect(delivered.map(([t]) => t)).toEqual(expected);
  expect(counted).toEqual({ 'command.result': expected.length });
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatchObject({
    level: 'info',
    redelivered: { 'command.result': expected.length },
  });
  expect(lines[0]?.truncated).toBeUndefined();
});

test('a source that returns its limit is named as truncated; with no tenants nothing is read', async () => {
  const { lines, catchUp } = harness();
  let reads = 0;
  catchUp.add({
    type: 'order.status',
    recent: async (tenants, _lookbackMs, limit) => {
      reads += 1;
      return Array.from({ length: limit }, (_, i) => ({
        tenantId: tenants[0] ?? '',
        event: { type: 'order.status', at: 'x', eventId: `e${i}` },
      }));
    },
  });
  await catchUp.run(['a'], 1);
  expect(lines[0]).toMatchObject({
    redelivered: { 'order.status': EVENTS_PER_QUERY },
    truncated: ['order.status'],
  });
  await catchUp.run([], 1);
  expect(reads).toBe(1);
  expect(lines).toHaveLength(2);
});

test('a source that cannot be read rejects the run (the subscriber retries it)', async () => {
  const { catchUp } = harness();
  catchUp.add({
    type: 'command.result',
    recent: async () => Promise.reject(new Error('connect ECONNREFUSED')),
  });
  await expect(catchUp.run(['a'], 1)).rejects.toThrow('ECONNREFUSED');
});
