// The dead_letters table: storing a dead letter once, and the queries behind `hub dead-letters`
// (list, show, replay, purge). A replay is asked here and carried out by the keeper of the queue
// (keeper.ts), which publishes with confirms and counts it.
import type { Knex } from 'knex';
import { notifyWork } from '../engine/work-table.js';
import type { FieldCipher } from '../field-cipher.js';
import {
  NOT_REPLAYABLE_SQL,
  notReplayable,
  type DeadLetterRecord,
  type KeptBody,
  type StoredDeadLetter,
} from './record.js';

export const DEAD_LETTERS = 'dead_letters';

/** The replay's state as operators read it, from the row's work status. */
export type DeadLetterState = 'dead' | 'replaying' | 'replayed' | 'replay_failed';
export const stateOf = (status: number | null): DeadLetterState =>
  status === null
    ? 'dead'
    : status === 2
      ? 'replayed'
      : status === 3
        ? 'replay_failed'
        : 'replaying';
const STATUS_SQL: Record<DeadLetterState, string> = {
  dead: 'status is null',
  replaying: 'status in (0, 1)',
  replayed: 'status = 2',
  replay_failed: 'status = 3',
};

/** Context of a sealed body: it decrypts only as this dead letter's body. */
const bodyContext = (fingerprint: string) => `dead_letters.body:${fingerprint}`;

/** Stores a dead letter unless it is there already; returns its id, or null for a redelivery. */
export async function storeDeadLetter(
  db: Knex,
  r: DeadLetterRecord,
  kept: KeptBody,
  cipher?: FieldCipher,
): Promise<string | null> {
  const sealed = cipher
    ? cipher.encrypt(kept.body.toString('base64'), bodyContext(r.fingerprint))
    : kept.body;
  const rows: { id: string }[] = await db(DEAD_LETTERS)
    .insert({
      fingerprint: r.fingerprint,
      queue: r.queue,
      source_queue: r.sourceQueue,
      exchange: r.exchange,
      routing_key: r.routingKey,
      reason: r.reason,
      properties: JSON.stringify(r.properties),
      body: sealed,
      body_encrypted: cipher !== undefined,
      body_bytes: kept.bytes,
      body_truncated: kept.truncated,
      dead_at: r.deadAt,
    })
    .onConflict('fingerprint')
    .ignore()
    .returning('id');
  return rows[0] ? String(rows[0].id) : null;
}

export interface DeadLetterRow extends StoredDeadLetter {
  fingerprint: string;
  /** The body, or its first DEAD_LETTER_MAX_BODY_BYTES when body_truncated. */
  body: Buffer;
  body_encrypted: boolean;
  dead_at: Date | null;
  created_at: Date;
  replayed_at: Date | null;
  status: number | null;
  attempts: number;
  last_error: string | null;
}

/** The body as kept (as published, or its beginning), decrypted when it was sealed (throws without the key). */
export function openBody(
  row: Pick<DeadLetterRow, 'body' | 'body_encrypted' | 'fingerprint'>,
  cipher?: FieldCipher,
): Buffer {
  if (!row.body_encrypted) return row.body;
  if (!cipher) throw new Error('the body is encrypted; DATA_ENCRYPTION_KEYS is needed to read it');
  return Buffer.from(cipher.decrypt<string>(row.body, bodyContext(row.fingerprint)), 'base64');
}

interface DeadLetterListing {
  id: string;
  queue: string;
  source: string;
  reason: string;
  state: DeadLetterState;
  bytes: number;
  stored: Date;
}

export async function listDeadLetters(
  db: Knex,
  o: { queue?: string; state?: DeadLetterState; limit: number },
): Promise<DeadLetterListing[]> {
  const q = db(DEAD_LETTERS)
    .select(
      'id',
      'queue',
      'source_queue',
      'exchange',
      'routing_key',
      'reason',
      'status',
      'body_bytes',
      'created_at',
    )
    .orderBy('id', 'desc')
    .limit(o.limit);
  if (o.queue) void q.where({ queue: o.queue });
  if (o.state) void q.whereRaw(STATUS_SQL[o.state]);
  const rows: Omit<DeadLetterRow, 'properties' | 'body'>[] = await q;
  return rows.map((r) => ({
    id: String(r.id),
    queue: r.queue,
    source: r.source_queue ?? '?',
    reason: r.reason,
    state: stateOf(r.status),
    bytes: r.body_bytes,
    stored: r.created_at,
  }));
}

export async function getDeadLetter(db: Knex, id: string): Promise<DeadLetterRow | undefined> {
  return db<DeadLetterRow>(DEAD_LETTERS).where({ id }).first();
}

export interface Selection {
  ids: string[];
  /** Every dead letter (of `queue` if given) instead of `ids`. */
  all: boolean;
  queue?: string;
}

function select(q: Knex.QueryBuilder, s: Selection): Knex.QueryBuilder {
  if (!s.all) void q.whereIn('id', s.ids);
  if (s.queue) void q.where({ queue: s.queue });
  return q;
}

/** Why a dead letter asked for was not queued for replay: a stable code and a sentence. */
type Refusal = {
  code:
    | 'not_found'
    | 'other_queue'
    | 'replayed'
    | 'replaying'
    | 'expired'
    | 'origin_unknown'
    | 'body_truncated';
  why: string;
};

interface ReplayRequest {
  /** Ids now queued for replay. */
  queued: string[];
  /** Ids given that were not queued, with the reason. */
  refused: ({ id: string } & Refusal)[];
}

/**
 * Queues dead letters for replay: only those not replayed yet (or whose replay failed) and that can
 * be replayed. Asking again for one already replayed or being replayed changes nothing, so a
 * dead letter is published once however often its replay is asked.
 */
export async function requestReplay(db: Knex, s: Selection): Promise<ReplayRequest> {
  const rows: { id: string }[] = await select(db(DEAD_LETTERS), s)
    .where((q) => q.whereNull('status').orWhere({ status: 3 }))
    .whereRaw(`not ${NOT_REPLAYABLE_SQL}`)
    .update({
      status: 0,
      attempts: 0,
      next_attempt_at: db.fn.now(),
      last_error: null,
      updated_at: db.fn.now(),
    })
    .returning('id');
  const queued = rows.map((r) => String(r.id));
  if (queued.length > 0) await notifyWork(db, DEAD_LETTERS);
  const refused: ReplayRequest['refused'] = [];
  for (const id of s.all ? [] : s.ids.filter((i) => !queued.includes(i))) {
    const row = await getDeadLetter(db, id);
    refused.push({
      id,
      ...(row ? whyNot(row, s.queue) : { code: 'not_found', why: 'no such dead letter' }),
    });
  }
  return { queued, refused };
}

function whyNot(row: DeadLetterRow, queue: string | undefined): Refusal {
  if (queue && row.queue !== queue) {
    return { code: 'other_queue', why: `it is in ${row.queue}, not ${queue}` };
  }
  if (row.status === 2) {
    return {
      code: 'replayed',
      why: `already replayed at ${row.replayed_at?.toISOString() ?? '?'}`,
    };
  }
  if (row.status === 0 || row.status === 1) {
    return { code: 'replaying', why: 'its replay is under way' };
  }
  const never = notReplayable(row);
  return never
    ? { code: never.code, why: never.reason }
    : { code: 'replaying', why: 'its replay was asked for at the same moment' };
}

/** Deletes dead letters that are not being replayed; returns the ids deleted. */
export async function purgeDeadLetters(db: Knex, s: Selection): Promise<string[]> {
  const rows: { id: string }[] = await select(db(DEAD_LETTERS), s)
    .where((q) => q.whereNull('status').orWhereIn('status', [2, 3]))
    .delete()
    .returning('id');
  return rows.map((r) => String(r.id));
}

/** The states of `ids` now. */
export async function replayStates(
  db: Knex,
  ids: string[],
): Promise<{ id: string; state: DeadLetterState; error: string | null }[]> {
  const rows: Pick<DeadLetterRow, 'id' | 'status' | 'last_error'>[] = await db(DEAD_LETTERS)
    .whereIn('id', ids)
    .select('id', 'status', 'last_error')
    .orderBy('id');
  return rows.map((r) => ({ id: String(r.id), state: stateOf(r.status), error: r.last_error }));
}

/** Dead letters kept and not replayed (nobody asked, or the replay failed), per queue. */
export async function waitingCount(db: Knex): Promise<{ queue: string; n: number }[]> {
  const rows: { queue: string; n: string }[] = await db(DEAD_LETTERS)
    .whereNull('status')
    .orWhere({ status: 3 })
    .groupBy('queue')
    .select('queue', db.raw('count(*) as n'));
  return rows.map((r) => ({ queue: r.queue, n: Number(r.n) }));
}
