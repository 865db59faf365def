// Dead letters as the hub keeps them: what a dead-lettered RabbitMQ message says about where it
// came from and why it died (the hub's x-hub-* headers, else the broker's x-death), how much of its
// body is kept, and how a replay sends it back there (or why it is never sent again). Pure.
import { createHash } from 'node:crypto';
import type { MessageProperties } from 'amqplib';

/** The hub's own headers on a message it dead-lettered itself (services' deadLetter functions). */
const HUB_REASON = 'x-hub-reason';
const HUB_SOURCE_QUEUE = 'x-hub-source-queue';
const HUB_SOURCE_EXCHANGE = 'x-hub-source-exchange';
/** On a replayed message: the id of the dead letter it was replayed from. */
export const HUB_REPLAY_OF = 'x-hub-replay-of';

/** Headers that describe a death or a delivery, not the message: dropped on replay. */
const DEATH_HEADERS = [
  'x-death',
  'x-first-death-queue',
  'x-first-death-exchange',
  'x-first-death-reason',
  'x-last-death-queue',
  'x-last-death-exchange',
  'x-last-death-reason',
  HUB_REASON,
  HUB_SOURCE_QUEUE,
  HUB_SOURCE_EXCHANGE,
  HUB_REPLAY_OF,
];
/** Headers the broker changes on every redelivery: left out of the fingerprint. */
const DELIVERY_HEADERS = ['x-delivery-count', 'x-acquired-count'];

export interface DeadLetterRecord {
  fingerprint: string;
  queue: string;
  sourceQueue: string | null;
  /** Exchange to replay to; null when only the source queue is known (replayed through the default exchange). */
  exchange: string | null;
  routingKey: string;
  reason: string;
  deadAt: Date | null;
  /** Properties with headers, JSON-safe (byte arrays as {"$bytes": base64}). */
  properties: Record<string, unknown>;
}

interface XDeath {
  queue?: unknown;
  reason?: unknown;
  exchange?: unknown;
  'routing-keys'?: unknown;
  time?: unknown;
}

const str = (v: unknown): string | null =>
  typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('utf8') : null;

/**
 * Text PostgreSQL cannot hold: NUL, refused in text and jsonb alike. A message may carry it anywhere
 * (a hostile publisher's header, routing key or reason); the row keeps every column storable.
 */
const NUL = '\u0000';

/** For a text column (reason, origin): NUL shown as U+FFFD; the exact value stays in the properties. */
function storableText<T extends string | null>(s: T): T {
  return (s === null ? s : s.replaceAll(NUL, '\uFFFD')) as T;
}

/**
 * Converts header values to JSON (byte arrays are base64, text holding NUL too, as `$string`);
 * `fromJsonSafe` undoes it for a replay.
 */
export function toJsonSafe(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return { $bytes: v.toString('base64') };
  if (typeof v === 'string' && v.includes('\u0000')) {
    return { $string: Buffer.from(v, 'utf8').toString('base64') };
  }
  if (Array.isArray(v)) return v.map(toJsonSafe);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJsonSafe(x)]));
  }
  return v;
}

export function fromJsonSafe(v: unknown, o: { bytes: boolean } = { bytes: true }): unknown {
  if (Array.isArray(v)) return v.map((x) => fromJsonSafe(x, o));
  if (v && typeof v === 'object') {
    const m = v as Record<string, unknown>;
    const only = Object.keys(m).length === 1;
    if (only && typeof m.$string === 'string') {
      return Buffer.from(m.$string, 'base64').toString('utf8');
    }
    if (only && o.bytes && typeof m.$bytes === 'string') return Buffer.from(m.$bytes, 'base64');
    return Object.fromEntries(Object.entries(m).map(([k, x]) => [k, fromJsonSafe(x, o)]));
  }
  return v;
}

/** Properties as `hub dead-letters show` prints them: text as it was sent (NUL and all; JSON holds it), byte arrays as base64. */
export function showableProperties(v: unknown): unknown {
  return fromJsonSafe(v, { bytes: false });
}

function deathTime(d: XDeath | undefined): Date | null {
  const t = d?.time as { value?: unknown } | number | undefined;
  const seconds = typeof t === 'number' ? t : typeof t?.value === 'number' ? t.value : null;
  return seconds === null ? null : new Date(seconds * 1000);
}

/** What a message taken from dead-letter queue `queue` says about itself. */
export function describeDeadLetter(
  queue: string,
  fields: { exchange: string; routingKey: string },
  properties: MessageProperties,
  body: Buffer,
): DeadLetterRecord {
  const headers = (properties.headers ?? {}) as Record<string, unknown>;
  const deaths = Array.isArray(headers['x-death']) ? (headers['x-death'] as XDeath[]) : [];
  const hubReason = str(headers[HUB_REASON]);
  let where: Pick<
    DeadLetterRecord,
    'sourceQueue' | 'exchange' | 'routingKey' | 'reason' | 'deadAt'
  >;
  if (hubReason !== null) {
    // Moved here by a hub consumer: it names the queue (and exchange) it took the message from.
    where = {
      sourceQueue: str(headers[HUB_SOURCE_QUEUE]),
      exchange: str(headers[HUB_SOURCE_EXCHANGE]),
      routingKey: fields.routingKey,
      reason: hubReason,
      deadAt: null,
    };
  } else if (deaths.length > 0) {
    // Dead-lettered by the broker: x-death lists each death, most recent first; the first death
    // names the queue, exchange and routing keys of the original publish.
    const firstQueue = str(headers['x-first-death-queue']) ?? str(deaths[deaths.length - 1]?.queue);
    const first = deaths.find((d) => str(d.queue) === firstQueue) ?? deaths[deaths.length - 1];
    const keys = Array.isArray(first?.['routing-keys'])
      ? (first['routing-keys'] as unknown[]).map(str)
      : [];
    where = {
      sourceQueue: firstQueue,
      exchange: str(headers['x-first-death-exchange']) ?? str(first?.exchange),
      routingKey: keys[0] ?? fields.routingKey,
      reason: str(headers['x-first-death-reason']) ?? str(first?.reason) ?? 'unknown',
      deadAt: deathTime(first),
    };
  } else {
    where = {
      sourceQueue: null,
      exchange: null,
      routingKey: fields.routingKey,
      reason: 'unknown (no x-death or x-hub-reason header)',
      deadAt: null,
    };
  }
  const safe = toJsonSafe(properties) as Record<string, unknown>;
  return {
    queue,
    deadAt: where.deadAt,
    properties: safe,
    fingerprint: fingerprint(queue, fields, safe, body),
    sourceQueue: storableText(where.sourceQueue),
    exchange: storableText(where.exchange),
    routingKey: storableText(where.routingKey),
    reason: storableText(where.reason),
  };
}

/**
 * The same dead letter delivered again (after a crash before its ack) hashes the same: the headers
 * that count deliveries are left out. x-death carries the death's time, so two deaths differ.
 */
function fingerprint(
  queue: string,
  fields: { exchange: string; routingKey: string },
  properties: Record<string, unknown>,
  body: Buffer,
): string {
  const headers = { ...((properties.headers ?? {}) as Record<string, unknown>) };
  for (const h of DELIVERY_HEADERS) delete headers[h];
  return createHash('sha256')
    .update(JSON.stringify([queue, fields.exchange, fields.routingKey, { ...properties, headers }]))
    .update(body)
    .digest('hex');
}

/** The body as the dead_letters table keeps it. */
export interface KeptBody {
  /** The whole body, or its first `max` bytes. */
  body: Buffer;
  /** The size of the body as published. */
  bytes: number;
  /** Only a prefix is kept: the dead letter can be inspected but never replayed. */
  truncated: boolean;
}

/**
 * The body to store: whole up to `max` bytes, else its first `max` bytes. RabbitMQ accepts messages
 * of up to 128 MiB, and a broken or hostile partner can publish as many as it likes to a queue the
 * hub dead-letters from; keeping them whole would let it fill the database.
 */
export function keptBody(body: Buffer, max: number): KeptBody {
  if (body.length <= max) return { body, bytes: body.length, truncated: false };
  return { body: body.subarray(0, max), bytes: body.length, truncated: true };
}

export interface StoredDeadLetter {
  id: string;
  queue: string;
  source_queue: string | null;
  exchange: string | null;
  routing_key: string;
  reason: string;
  properties: Record<string, unknown>;
  /** The size of the body as published. */
  body_bytes: number;
  body_truncated: boolean;
}

/** Why a dead letter is never replayed: a stable code and a sentence for operators. */
interface NotReplayable {
  code: 'expired' | 'origin_unknown' | 'body_truncated';
  reason: string;
}

type ReplayPlan =
  | { ok: true; exchange: string; routingKey: string; properties: Record<string, unknown> }
  | ({ ok: false } & NotReplayable);

/** Reasons a dead letter is never replayed (notReplayable), as the SQL the CLI's replay filters with. */
export const NOT_REPLAYABLE_SQL = `(reason = 'expired' or (exchange is null and source_queue is null) or body_truncated)`;

/** Why `row` is never replayed, or null when it can be. */
export function notReplayable(
  row: Pick<
    StoredDeadLetter,
    'reason' | 'exchange' | 'source_queue' | 'body_bytes' | 'body_truncated'
  >,
): NotReplayable | null {
  // An expired message outlived its TTL on purpose: a door-open command acted on late would open a
  // door nobody is waiting at.
  if (row.reason === 'expired') {
    return {
      code: 'expired',
      reason: 'it expired in its queue; a message past its TTL is not sent again',
    };
  }
  if (row.body_truncated) {
    return {
      code: 'body_truncated',
      reason: `its body of ${row.body_bytes} bytes was larger than DEAD_LETTER_MAX_BODY_BYTES, so only its beginning was kept; a cut message is not sent again`,
    };
  }
  if (row.exchange === null && row.source_queue === null) {
    return {
      code: 'origin_unknown',
      reason: 'where it came from is unknown (no x-death or x-hub-source-queue header)',
    };
  }
  return null;
}

/**
 * Where a replay publishes the dead letter, with its properties as first published (the death's
 * headers dropped, the replay's origin added), or why it is not replayed.
 */
export function replayPlan(row: StoredDeadLetter): ReplayPlan {
  const refused = notReplayable(row);
  if (refused) return { ok: false, ...refused };
  const properties = fromJsonSafe(row.properties) as Record<string, unknown>;
  const headers = { ...((properties.headers ?? {}) as Record<string, unknown>) };
  for (const h of [...DEATH_HEADERS, ...DELIVERY_HEADERS]) delete headers[h];
  headers[HUB_REPLAY_OF] = row.id;
  // The user id is checked against the publishing connection's user, which is the hub's now.
  const {
    expiration: _expiration,
    headers: _headers,
    deliveryMode: _mode,
    userId: _user,
    ...rest
  } = properties;
  const replayed = { ...dropNulls(rest), headers, persistent: true };
  if (row.exchange !== null) {
    return { ok: true, exchange: row.exchange, routingKey: row.routing_key, properties: replayed };
  }
  // Without an exchange the source queue is known (notReplayable refused a row with neither).
  return { ok: true, exchange: '', routingKey: row.source_queue ?? '', properties: replayed };
}

/** amqplib reads absent properties as undefined; JSON may hold nulls, which it would send as values. */
function dropNulls(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined));
}
