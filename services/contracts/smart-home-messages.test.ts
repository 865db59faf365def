// Unit tests for the partner message contract: replies are parsed or refused with a reason.
import { describe, expect, test } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { buildCommand, buildReply, parseReply, replyTypeOf } from './smart-home-messages.js';

const command = buildCommand({
  type: 'device.open',
  correlationId: randomUUID(),
  service: 'barrier',
  tenantRef: randomUUID(),
  createdAt: new Date(),
  attempt: 1,
  payload: { expiresAt: new Date().toISOString() },
});

describe('parseReply', () => {
  test('accepts a reply built for a command and keeps its correlation', () => {
    const r = parseReply(Buffer.from(JSON.stringify(buildReply(command, 'success'))));
    expect(r.ok && r.reply).toMatchObject({
      correlationId: command.correlationId,
      type: 'device.open.result',
      payload: { outcome: 'success' },
    });
  });

  test('a body that is not JSON gives a reason instead of throwing', () => {
    expect(parseReply(Buffer.from('{"nope'))).toEqual({ ok: false, reason: 'body is not JSON' });
  });

  test('a reply missing fields names each of them', () => {
    const r = parseReply(Buffer.from(JSON.stringify({ type: 'device.open.result' })));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/messageId.*correlationId/s);
  });

  test('an unknown reply type or outcome is refused', () => {
    const reply = buildReply(command, 'success');
    expect(
      parseReply(Buffer.from(JSON.stringify({ ...reply, type: 'device.close.result' }))).ok,
    ).toBe(false);
    expect(
      parseReply(Buffer.from(JSON.stringify({ ...reply, payload: { outcome: 'maybe' } }))).ok,
    ).toBe(false);
  });
});

describe('buildCommand', () => {
  test('every command gets a fresh message id and keeps the correlation id', () => {
    const again = buildCommand({
      ...command,
      createdAt: new Date(command.createdAt),
      payload: command.payload,
    });
    expect(again.messageId).not.toBe(command.messageId);
    expect(again.correlationId).toBe(command.correlationId);
  });

  test('personal data that break the contract are not sent', () => {
    expect(() =>
      buildCommand({
        type: 'subscription.connect',
        correlationId: randomUUID(),
        service: 'intercom',
        tenantRef: randomUUID(),
        createdAt: new Date(),
        attempt: 1,
        payload: {
          personalData: { fullName: '', phone: 'x', apartment: '' },
          biometricsConsent: false,
        },
      }),
    ).toThrow();
  });

  test('the reply type is the command type followed by .result', () => {
    expect(replyTypeOf('subscription.disconnect')).toBe('subscription.disconnect.result');
  });
});
