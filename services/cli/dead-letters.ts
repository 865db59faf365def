// `hub dead-letters`: list, show, replay and purge the dead letters the hub keeps in PostgreSQL
// (services/core/dead-letters/). A replay is queued here and published by the keeper of its queue
// (mq-bridge, kitchen), which confirms it with the broker and counts it; this command waits for it.
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Knex } from 'knex';
import { loadConfig } from '../core/config.js';
import { encryptionKeysEnv, FieldCipher } from '../core/field-cipher.js';
import {
  getDeadLetter,
  listDeadLetters,
  openBody,
  purgeDeadLetters,
  replayStates,
  requestReplay,
  stateOf,
  type DeadLetterRow,
  type DeadLetterState,
  type Selection,
} from '../core/dead-letters/store.js';
import { notReplayable, showableProperties } from '../core/dead-letters/record.js';

type WithDb = <T>(fn: (db: Knex) => Promise<T>) => Promise<T>;

const STATES: readonly DeadLetterState[] = ['dead', 'replaying', 'replayed', 'replay_failed'];

function positive(max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > max) {
      throw new InvalidArgumentError(`a whole number from 0 to ${max}`);
    }
    return n;
  };
}

function selection(ids: string[], o: { all?: boolean; queue?: string }): Selection {
  if (ids.length === 0 && !o.all) {
    throw new Error('give dead-letter ids, or --all (with --queue to take one queue)');
  }
  if (ids.length > 0 && o.all) throw new Error('give dead-letter ids or --all, not both');
  if (ids.some((id) => !/^\d{1,18}$/.test(id))) {
    throw new Error('dead-letter ids are numbers (see `hub dead-letters list`)');
  }
  return { ids, all: o.all === true, queue: o.queue };
}

// eslint-disable-next-line no-control-regex -- the control characters are what it looks for
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/**
 * The body as text when it is printable UTF-8, else base64 (Protobuf events, binary payloads). A
 * body cut at the size limit may end inside a character: its last 1-3 bytes are then left out.
 */
function bodyView(body: Buffer, truncated: boolean): { encoding: 'utf8' | 'base64'; text: string } {
  for (let cut = 0; cut <= (truncated ? Math.min(3, body.length) : 0); cut++) {
    const part = body.subarray(0, body.length - cut);
    const text = part.toString('utf8');
    if (Buffer.from(text, 'utf8').equals(part) && !CONTROL.test(text)) {
      return { encoding: 'utf8', text };
    }
  }
  return { encoding: 'base64', text: body.toString('base64') };
}

function showView(row: DeadLetterRow, cipher: FieldCipher | undefined) {
  let body: unknown;
  try {
    const kept = openBody(row, cipher);
    body = row.body_truncated
      ? { truncated: true, keptBytes: kept.length, ...bodyView(kept, true) }
      : bodyView(kept, false);
  } catch (thrown) {
    body = { encrypted: true, note: thrown instanceof Error ? thrown.message : String(thrown) };
  }
  return {
    id: String(row.id),
    queue: row.queue,
    state: stateOf(row.status),
    reason: row.reason,
    sourceQueue: row.source_queue,
    exchange: row.exchange,
    routingKey: row.routing_key,
    deadAt: row.dead_at,
    storedAt: row.created_at,
    replayedAt: row.replayed_at,
    replayError: row.last_error,
    bytes: row.body_bytes,
    bodyTruncated: row.body_truncated,
    notReplayable: notReplayable(row),
    properties: showableProperties(row.properties),
    body,
  };
}

/** The cipher when DATA_ENCRYPTION_KEYS is set: sealed bodies are shown only with it. */
function optionalCipher(env: Record<string, string | undefined>): FieldCipher | undefined {
  if (!env.DATA_ENCRYPTION_KEYS?.trim()) return undefined;
  return new FieldCipher(loadConfig(encryptionKeysEnv, env).DATA_ENCRYPTION_KEYS);
}

async function waitForReplays(db: Knex, ids: string[], seconds: number) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const states = await replayStates(db, ids);
    if (states.every((s) => s.state !== 'replaying') || Date.now() >= deadline) return states;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `env`: what the CLI reads (environment.ts); sealed bodies open with its DATA_ENCRYPTION_KEYS. */
export function deadLetterCommands(
  withDb: WithDb,
  env: Record<string, string | undefined> = process.env,
): Command {
  const cmd = new Command('dead-letters').description(
    'dead-lettered RabbitMQ messages the hub keeps: list, show, replay, purge',
  );
  cmd
    .command('list')
    .description('list dead letters, newest first (those not replayed by default)')
    .option(
      '-q, --queue <queue>',
      'only this dead-letter queue (e.g. smart-home.dead-letter, kitchen.order-status.dead)',
    )
    .addOption(
      new Option('-s, --state <state>', 'replay state').choices([...STATES, 'all']).default('dead'),
    )
    .option('-l, --limit <n>', 'at most this many rows', positive(10_000), 50)
    .option('--json', 'one JSON object per line')
    .action(async (o: { queue?: string; state: string; limit: number; json?: boolean }) => {
      await withDb(async (db) => {
        const rows = await listDeadLetters(db, {
          queue: o.queue,
          state: o.state === 'all' ? undefined : (o.state as DeadLetterState),
          limit: o.limit,
        });
        if (o.json) for (const r of rows) console.log(JSON.stringify(r));
        else if (rows.length === 0) console.log('no dead letters');
        else console.table(rows.map((r) => ({ ...r, reason: r.reason.slice(0, 80) })));
      });
    });
  cmd
    .command('show')
    .description(
      'one dead letter: reason, origin, properties and headers (x-death), body (sealed bodies need DATA_ENCRYPTION_KEYS; of one larger than DEAD_LETTER_MAX_BODY_BYTES only its beginning), and why it cannot be replayed if so',
    )
    .argument('<id>', 'dead-letter id')
    .action(async (id: string) => {
      selection([id], {});
      await withDb(async (db) => {
        const row = await getDeadLetter(db, id);
        if (!row) throw new Error(`no dead letter ${id}`);
        console.log(JSON.stringify(showView(row, optionalCipher(env)), null, 2));
      });
    });
  cmd
    .command('replay')
    .description(
      'publish dead letters again to the exchange and routing key they were first published to; each is published once, however often this is run',
    )
    .argument('[ids...]', 'dead-letter ids')
    .option('--all', 'every dead letter not replayed yet (of --queue if given)')
    .option('-q, --queue <queue>', 'only this dead-letter queue')
    .option(
      '-w, --wait <seconds>',
      'how long to wait for the keeper to publish them (0: do not wait)',
      positive(3_600),
      30,
    )
    .action(async (ids: string[], o: { all?: boolean; queue?: string; wait: number }) => {
      const s = selection(ids, o);
      await withDb(async (db) => {
        const r = await requestReplay(db, s);
        for (const x of r.refused) {
          console.error(`dead letter ${x.id} not replayed: ${x.why} (${x.code})`);
        }
        if (r.refused.length > 0) process.exitCode = 1;
        if (r.queued.length === 0) {
          console.log('no dead letter queued for replay');
          return;
        }
        console.log(`queued ${r.queued.length} dead letter(s) for replay: ${r.queued.join(', ')}`);
        if (o.wait === 0) return;
        const states = await waitForReplays(db, r.queued, o.wait);
        const by = (st: DeadLetterState) => states.filter((x) => x.state === st);
        if (by('replayed').length) {
          console.log(
            `replayed: ${by('replayed')
              .map((x) => x.id)
              .join(', ')}`,
          );
        }
        for (const x of by('replay_failed')) {
          console.error(`dead letter ${x.id} replay failed: ${x.error ?? 'unknown error'}`);
        }
        const pending = by('replaying');
        if (pending.length) {
          console.error(
            `still queued after ${o.wait}s (is the queue's keeper, mq-bridge or kitchen, running?): ${pending.map((x) => x.id).join(', ')}`,
          );
        }
        if (by('replay_failed').length || pending.length) process.exitCode = 1;
      });
    });
  cmd
    .command('purge')
    .description('delete dead letters for good (not those being replayed)')
    .argument('[ids...]', 'dead-letter ids')
    .option('--all', 'every dead letter (of --queue if given)')
    .option('-q, --queue <queue>', 'only this dead-letter queue')
    .action(async (ids: string[], o: { all?: boolean; queue?: string }) => {
      const s = selection(ids, o);
      await withDb(async (db) => {
        const deleted = await purgeDeadLetters(db, s);
        console.log(
          deleted.length
            ? `purged ${deleted.length} dead letter(s): ${deleted.join(', ')}`
            : 'no dead letter purged',
        );
        const missed = s.all ? [] : s.ids.filter((i) => !deleted.includes(i));
        for (const id of missed) {
          console.error(
            `dead letter ${id} not purged: unknown${s.queue ? ` in ${s.queue}` : ''}, or its replay is under way`,
          );
        }
        if (missed.length) process.exitCode = 1;
      });
    });
  return cmd;
}
