// Numbered schema migrations. Each runs in a transaction that first takes a transaction-scoped
// advisory lock for the schema and records itself, so two pods migrating at once serialise:
// the second waits, then finds the migration recorded and skips it.
import type { Knex } from 'knex';
import { quoteIdent } from './db.js';
import { migrations, type Migration } from './migrations/index.js';

interface MigrateResult {
  applied: string[];
  alreadyApplied: number;
}

/** 32-bit FNV-1a, to turn the schema name into an advisory lock key. */
function lockKey(schema: string): number {
  let h = 0x811c9dc5;
  for (const ch of `integration-hub:migrate:${schema}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

export async function migrate(
  db: Knex,
  schema: string,
  list: readonly Migration[] = migrations,
): Promise<MigrateResult> {
  const s = quoteIdent(schema);
  const applied: string[] = [];
  let alreadyApplied = 0;
  for (const migration of list) {
    await db.transaction(async (trx) => {
      await trx.raw('select pg_advisory_xact_lock(?)', [lockKey(schema)]);
      await trx.raw(`create schema if not exists ${s}`);
      await trx.raw(
        `create table if not exists ${s}.hub_migrations (
           id int primary key, name text not null, applied_at timestamptz not null default now())`,
      );
      const inserted = await trx.raw(
        `insert into ${s}.hub_migrations (id, name) values (?, ?) on conflict (id) do nothing returning id`,
        [migration.id, migration.name],
      );
      if (inserted.rows.length === 0) {
        alreadyApplied++;
        return;
      }
      await trx.raw(`set local search_path to ${s}`);
      await trx.raw(migration.sql);
      applied.push(`${String(migration.id).padStart(6, '0')}_${migration.name}`);
    });
  }
  return { applied, alreadyApplied };
}
