// Unit tests for what a partner's reply does to an open command, and the tenant's event of its result.
import { describe, expect, test } from '@jest/globals';
import {
  commandResultEvent,
  replyVerdict,
  statusOfOutcome,
  type CommandRecord,
  type CommandStatus,
} from './command-state.js';

const created = new Date('2026-01-01T10:00:00.000Z');
const deadline = new Date('2026-01-01T10:00:10.000Z');
const command = (status: CommandStatus = 'pending'): CommandRecord => ({
  commandId: '6d1a4c1e-7f0e-4a8e-9a59-3f1c0e3b2a11',
  tenantId: 't1',
  service: 'intercom',
  partner: 'acme',
  status,
  createdAt: created,
  deadline,
});
const acme = { partner: 'acme', service: 'intercom' };
const before = new Date(deadline.getTime() - 1);
const after = new Date(deadline.getTime() + 1);

describe('a reply to an open command', () => {
  test('from the partner asked, for its service, by the deadline, is applied', () => {
    expect(replyVerdict(command(), acme, before)).toEqual({ action: 'apply' });
    expect(replyVerdict(command(), acme, deadline)).toEqual({ action: 'apply' });
  });

  test('after the deadline to a pending command times the command out', () => {
    expect(replyVerdict(command(), acme, after)).toEqual({ action: 'time_out' });
  });

  test('is ignored with its reason: unknown, another partner, another service, late, duplicate', () => {
    expect(replyVerdict(undefined, acme, before)).toEqual({ action: 'ignore', result: 'unknown' });
    expect(replyVerdict(command(), { ...acme, partner: 'intruder' }, before)).toEqual({
      action: 'ignore',
      result: 'mismatched_partner',
    });
    expect(replyVerdict(command(), { ...acme, service: 'barrier' }, before)).toEqual({
      action: 'ignore',
      result: 'mismatched_service',
    });
    expect(replyVerdict(command('timeout'), acme, after)).toEqual({
      action: 'ignore',
      result: 'late',
    });
    expect(replyVerdict(command('opened'), acme, before)).toEqual({
      action: 'ignore',
      result: 'duplicate',
    });
    expect(replyVerdict(command('failed'), acme, after)).toEqual({
      action: 'ignore',
      result: 'duplicate',
    });
  });

  test("another partner learns nothing about the command's state, even once it ended", () => {
    expect(replyVerdict(command('opened'), { ...acme, partner: 'intruder' }, after)).toEqual({
      action: 'ignore',
      result: 'mismatched_partner',
    });
  });

  test("the partner's outcome maps to the command's status", () => {
    expect([statusOfOutcome('success'), statusOfOutcome('failure')]).toEqual(['opened', 'failed']);
  });
});

describe("the tenant's command.result", () => {
  const ended = (status: CommandStatus): CommandRecord => ({
    ...command(status),
    reason: 'relay 3 stuck at host db-7',
    completedAt: after,
  });

  test("is the same event whoever builds it: the command's id, its outcome and the time it was decided", () => {
    expect(commandResultEvent(ended('opened'))).toEqual({
      type: 'command.result',
      at: after.toISOString(),
      commandId: command().commandId,
      service: 'intercom',
      status: 'opened',
    });
    expect(commandResultEvent(ended('timeout'))).toEqual(commandResultEvent(ended('timeout')));
  });

  test("of a failure carries the failure code, never the partner's words", () => {
    const event = commandResultEvent(ended('failed'));
    expect(event).toMatchObject({ status: 'failed', failureCode: 'partner_refused' });
    expect(JSON.stringify(event)).not.toContain('relay');
  });

  test('of a pending command cannot be built', () => {
    expect(() => commandResultEvent(command('pending'))).toThrow('no outcome');
  });
});
