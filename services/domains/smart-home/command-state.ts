// An open command's life as data: pending until the partner's reply or its deadline
// decides opened, failed or timeout, exactly once. Pure, no I/O: PostgreSQL holds the row, and
// command-store.ts applies what this decides.
import { buildCommandResult, type CommandResultEvent } from '../../contracts/tenant-events.js';
import type { Service } from './domain.js';

export const COMMAND_STATUSES = ['pending', 'opened', 'failed', 'timeout'] as const;
export type CommandStatus = (typeof COMMAND_STATUSES)[number];
export type FinalStatus = Exclude<CommandStatus, 'pending'>;

export interface CommandRecord {
  commandId: string;
  tenantId: string;
  service: Service;
  /** The partner expected to answer. */
  partner: string;
  status: CommandStatus;
  /** The partner's words, for operators only (tenants get a failure code). */
  reason?: string;
  createdAt: Date;
  deadline: Date;
  completedAt?: Date;
}

/** What a partner's reply to an open command does; everything but `settled` changes nothing of the reply's. */
export type SettleResult =
  'settled' | 'unknown' | 'mismatched_partner' | 'mismatched_service' | 'duplicate' | 'late';

/** A reply's verdict: apply it, time the command out (the reply came after the deadline), or ignore it, with the reason. */
type ReplyVerdict =
  | { action: 'apply' }
  | { action: 'time_out' }
  | { action: 'ignore'; result: Exclude<SettleResult, 'settled'> };

/**
 * Decides what a reply from `partner` naming `service` does to `command` at `now`. Only the partner
 * asked, for the command's service, before the deadline, settles a pending command.
 */
export function replyVerdict(
  command: CommandRecord | undefined,
  reply: { partner: string; service: string },
  now: Date,
): ReplyVerdict {
  if (!command) return { action: 'ignore', result: 'unknown' };
  if (reply.partner !== command.partner) return { action: 'ignore', result: 'mismatched_partner' };
  if (reply.service !== command.service) return { action: 'ignore', result: 'mismatched_service' };
  if (command.status === 'timeout') return { action: 'ignore', result: 'late' };
  if (command.status !== 'pending') return { action: 'ignore', result: 'duplicate' };
  if (now.getTime() > command.deadline.getTime()) return { action: 'time_out' };
  return { action: 'apply' };
}

/** The partner's outcome as the command's status. */
export function statusOfOutcome(outcome: 'success' | 'failure'): 'opened' | 'failed' {
  return outcome === 'success' ? 'opened' : 'failed';
}

/**
 * The tenant's `command.result` event of an ended command: one per command, so `commandId` is its
 * id, and a copy pushed again (a failed push retried, a re-delivery after a lost subscription) is
 * the same event. Times are the record's. A failure carries the code `partner_refused`, never the
 * partner's words.
 */
export function commandResultEvent(c: CommandRecord): CommandResultEvent {
  if (c.status === 'pending' || !c.completedAt) {
    throw new Error(`command ${c.commandId} has no outcome to publish`);
  }
  return buildCommandResult({
    commandId: c.commandId,
    service: c.service,
    status: c.status,
    completedAt: c.completedAt,
    ...(c.status === 'failed' ? { failureCode: 'partner_refused' as const } : {}),
  });
}
