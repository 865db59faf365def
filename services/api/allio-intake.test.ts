// Unit tests for what one ALLIO webhook is charged against its integration's intake limits.
import { describe, expect, test } from '@jest/globals';
import { intakeQuotas, isDeleteCommand } from './allio-intake.js';

const limits = {
  ALLIO_WEBHOOKS_PER_MINUTE: 600,
  ALLIO_WEBHOOK_IDS_PER_MINUTE: 100_000,
  ALLIO_WEBHOOK_DELETE_IDS_PER_MINUTE: 10_000,
};
const costs = (command: string, ids: number) =>
  Object.fromEntries(intakeQuotas(limits, 'k', command, ids).map((q) => [q.key, q.cost]));

describe('allio intake quotas', () => {
  test('an upsert command costs one webhook and its ids, and nothing of the delete budget', () => {
    expect(costs('RESERVE_ADD', 250)).toEqual({ 'k:webhooks': 1, 'k:ids': 250, 'k:delete-ids': 0 });
  });

  test('a *_DEL command costs its ids against both the id and the delete budget', () => {
    expect(costs('DEALCARD_DEL', 40)).toEqual({ 'k:webhooks': 1, 'k:ids': 40, 'k:delete-ids': 40 });
  });

  test('a webhook without ids still costs one webhook', () => {
    expect(costs('SPACE_CHANGED', 0)).toEqual({ 'k:webhooks': 1, 'k:ids': 0, 'k:delete-ids': 0 });
  });

  test('every budget is per minute with the configured limit', () => {
    expect(intakeQuotas(limits, 'k', 'RESERVE_DEL', 1).map((q) => [q.limit, q.periodMs])).toEqual([
      [600, 60_000],
      [100_000, 60_000],
      [10_000, 60_000],
    ]);
  });

  test.each([
    ['RESERVE_DEL', true],
    ['DEALCARD_DEL', true],
    ['RESERVE_MOD', false],
    ['DELIVERY_ADD', false],
  ])('%s is a delete command: %s', (command, expected) => {
    expect(isDeleteCommand(command)).toBe(expected);
  });
});
