// The smart-home partner message contract (docs/asyncapi.yaml): JSON commands from the hub to a
// partner, JSON replies from the partner to the hub. Every message carries its own id, the
// correlation id of the tenant's request, its type, the service, the tenant reference and times.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { jsonRefusal } from '../core/bounds.js';
import { parseWithReason } from '../core/validation.js';

/** The services a partner may offer. */
export const SERVICES = ['intercom', 'barrier'] as const;
export type Service = (typeof SERVICES)[number];

export const COMMAND_TYPES = [
  'subscription.connect',
  'subscription.disconnect',
  'device.open',
] as const;
export type CommandType = (typeof COMMAND_TYPES)[number];
export const REPLY_TYPES = [
  'subscription.connect.result',
  'subscription.disconnect.result',
  'device.open.result',
] as const;
export type ReplyType = (typeof REPLY_TYPES)[number];

export const replyTypeOf = (t: CommandType): ReplyType => `${t}.result` as ReplyType;

const envelope = {
  messageId: z.string().uuid(),
  correlationId: z.string().uuid(),
  service: z.enum(SERVICES),
  /** Opaque, stable per tenant and service; never the tenant's own id. */
  tenantRef: z.string().uuid(),
  createdAt: z.string().datetime({ offset: true }),
};

export const personalDataSchema = z
  .object({
    fullName: z.string().trim().min(1).max(200),
    phone: z
      .string()
      .trim()
      .regex(/^\+?[0-9 ()-]{7,20}$/, 'must be a phone number'),
    email: z.string().email().max(200).optional(),
    apartment: z.string().trim().min(1).max(50),
    /** A vehicle plate for the barrier's recognition. */
    vehiclePlate: z.string().trim().min(1).max(20).optional(),
  })
  .strict();
export type PersonalData = z.infer<typeof personalDataSchema>;

export const commandMessage = z.discriminatedUnion('type', [
  z.object({
    ...envelope,
    type: z.literal('subscription.connect'),
    sentAt: z.string().datetime({ offset: true }),
    attempt: z.number().int().positive(),
    payload: z.object({ personalData: personalDataSchema, biometricsConsent: z.boolean() }),
  }),
  z.object({
    ...envelope,
    type: z.literal('subscription.disconnect'),
    sentAt: z.string().datetime({ offset: true }),
    attempt: z.number().int().positive(),
    payload: z.object({}).strict(),
  }),
  z.object({
    ...envelope,
    type: z.literal('device.open'),
    sentAt: z.string().datetime({ offset: true }),
    attempt: z.number().int().positive(),
    /** The partner must not act on a command after this time (the tenant has been told "timeout"). */
    payload: z.object({ expiresAt: z.string().datetime({ offset: true }) }),
  }),
]);
export type CommandMessage = z.infer<typeof commandMessage>;

export const replyMessage = z.object({
  ...envelope,
  type: z.enum(REPLY_TYPES),
  payload: z.object({
    outcome: z.enum(['success', 'failure']),
    /** Why it failed, in the partner's words (shown to operators, not to tenants). */
    reason: z.string().max(500).optional(),
  }),
});
export type ReplyMessage = z.infer<typeof replyMessage>;

export type ParsedReply = { ok: true; reply: ReplyMessage } | { ok: false; reason: string };

/**
 * The largest reply body parsed. A reply is ~400 bytes and its free text (reason) at most 500
 * characters, so 16 KiB is generous; a larger body is refused before it is decoded.
 */
export const MAX_REPLY_BYTES = 16 * 1024;

/**
 * Parses a reply body; a body that is not the contract gives a short reason instead of throwing
 * (zod quotes a bad enum value in its message, so an unbounded reason could carry the whole body).
 */
export function parseReply(body: Buffer): ParsedReply {
  if (body.length > MAX_REPLY_BYTES) {
    return {
      ok: false,
      reason: `body is ${body.length} bytes; a reply is at most ${MAX_REPLY_BYTES}`,
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return { ok: false, reason: 'body is not JSON' };
  }
  // Text PostgreSQL cannot store (NUL) or nesting past the parser's limit is not the contract.
  const refusal = jsonRefusal(json);
  if (refusal) return { ok: false, reason: refusal.message };
  const parsed = parseWithReason(replyMessage, json);
  return parsed.ok ? { ok: true, reply: parsed.value } : { ok: false, reason: parsed.reason };
}

export function buildCommand(o: {
  type: CommandType;
  correlationId: string;
  service: Service;
  tenantRef: string;
  createdAt: Date;
  attempt: number;
  payload: CommandMessage['payload'];
}): CommandMessage {
  return commandMessage.parse({
    messageId: randomUUID(),
    correlationId: o.correlationId,
    type: o.type,
    service: o.service,
    tenantRef: o.tenantRef,
    createdAt: o.createdAt.toISOString(),
    sentAt: new Date().toISOString(),
    attempt: o.attempt,
    payload: o.payload,
  });
}

/** A partner's answer to a command (used by the simulator and the partner SDK example). */
export function buildReply(
  command: CommandMessage,
  outcome: 'success' | 'failure',
  reason?: string,
): ReplyMessage {
  return {
    messageId: randomUUID(),
    correlationId: command.correlationId,
    type: replyTypeOf(command.type),
    service: command.service,
    tenantRef: command.tenantRef,
    createdAt: new Date().toISOString(),
    payload: reason === undefined ? { outcome } : { outcome, reason },
  };
}
