// Unit tests for the smart-home state machine and the reply-deadline maths.
import { describe, expect, test } from '@jest/globals';
import {
  decideTenantAction,
  erasesPersonalData,
  replyDeadlineMs,
  subscriptionAfter,
  subscriptionDuring,
  SUBSCRIPTION_STATES,
  type SubscriptionState,
  type TenantAction,
} from './domain.js';

const allowed = (state: SubscriptionState | undefined, action: TenantAction) =>
  decideTenantAction(state, action).allowed;
const refusal = (state: SubscriptionState | undefined, action: TenantAction) => {
  const d = decideTenantAction(state, action);
  return d.allowed ? undefined : d.refusal.code;
};

describe('tenant actions by subscription state', () => {
  test('a tenant who never asked may connect, and may neither disconnect nor open', () => {
    expect(decideTenantAction(undefined, 'connect')).toEqual({ allowed: true, next: 'connecting' });
    expect(refusal(undefined, 'disconnect')).toBe('not_connected');
    expect(refusal(undefined, 'open')).toBe('not_connected');
  });

  test('only a connected subscription may be opened', () => {
    expect(SUBSCRIPTION_STATES.filter((s) => allowed(s, 'open'))).toEqual(['connected']);
  });

  test('only a connected subscription may be disconnected, and it moves to disconnecting', () => {
    expect(SUBSCRIPTION_STATES.filter((s) => allowed(s, 'disconnect'))).toEqual(['connected']);
    expect(decideTenantAction('connected', 'disconnect')).toEqual({
      allowed: true,
      next: 'disconnecting',
    });
  });

  test('connect is allowed again after a disconnection or a failed connection, never while connected', () => {
    expect(SUBSCRIPTION_STATES.filter((s) => allowed(s, 'connect'))).toEqual([
      'disconnected',
      'failed',
    ]);
    expect(refusal('connected', 'connect')).toBe('already_connected');
  });

  test('while a request is in flight every action is refused as in progress, except opening a connecting one', () => {
    for (const action of ['connect', 'disconnect'] as const) {
      expect(refusal('connecting', action)).toBe('request_in_progress');
      expect(refusal('disconnecting', action)).toBe('request_in_progress');
    }
    expect(refusal('disconnecting', 'open')).toBe('request_in_progress');
    expect(refusal('connecting', 'open')).toBe('not_connected');
  });

  test('every refusal carries a sentence for the app', () => {
    for (const s of [undefined, ...SUBSCRIPTION_STATES]) {
      for (const a of ['connect', 'disconnect', 'open'] as const) {
        const d = decideTenantAction(s, a);
        if (!d.allowed) expect(d.refusal.message.length).toBeGreaterThan(10);
      }
    }
  });
});

describe('request outcomes', () => {
  test('connect: complete -> connected, failed -> failed', () => {
    expect(subscriptionAfter('connect', 'complete')).toBe('connected');
    expect(subscriptionAfter('connect', 'failed')).toBe('failed');
  });

  test('disconnect: complete -> disconnected; a failed disconnect leaves the service connected', () => {
    expect(subscriptionAfter('disconnect', 'complete')).toBe('disconnected');
    expect(subscriptionAfter('disconnect', 'failed')).toBe('connected');
  });

  test('in flight, a subscription is connecting or disconnecting', () => {
    expect(subscriptionDuring('connect')).toBe('connecting');
    expect(subscriptionDuring('disconnect')).toBe('disconnecting');
  });

  test('personal data are erased only when a disconnection completes', () => {
    expect(erasesPersonalData('disconnect', 'complete')).toBe(true);
    expect(erasesPersonalData('disconnect', 'failed')).toBe(false);
    expect(erasesPersonalData('connect', 'complete')).toBe(false);
  });
});

describe('replyDeadlineMs', () => {
  test('doubles with each attempt from the reply timeout', () => {
    expect([1, 2, 3, 4].map((a) => replyDeadlineMs(a, 30_000))).toEqual([
      30_000, 60_000, 120_000, 240_000,
    ]);
  });
  test('is capped, and attempt 0 or below counts as the first', () => {
    expect(replyDeadlineMs(30, 30_000)).toBe(15 * 60_000);
    expect(replyDeadlineMs(0, 1_000)).toBe(1_000);
  });
});
