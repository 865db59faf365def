// PostgreSQL access through knex: one pool per process, every connection pinned to the hub's schema.
import knexFactory, { type Knex } from 'knex';
import type { DatabaseConfig } from './config.js';
import type { Logger } from './logger.js';

export type Db = Knex;

/**
 * knex's own warnings for a connection it could not make or that broke: the failing query's caller
 * reports the outage (one line per change of state), so these, with their stacks, would only
 * repeat it for every attempt.
 */
const CONNECTION_NOISE = /^(Connection Error|Acquire connection error)/;

/** knex's log lines through the service's logger (else they go to the console, stacks and all). */
function knexLog(logger: Logger): Knex.Config['log'] {
  const text = (message: unknown) => (typeof message === 'string' ? message : String(message));
  return {
    warn: (m: unknown) => (CONNECTION_NOISE.test(text(m)) ? logger.debug({ knex: text(m) }, 'database connection attempt failed') : logger.warn({ knex: text(m) }, 'knex warning')),
    error: (m: unknown) => logger.error({ knex: text(m) }, 'knex error'),
    deprecate: (m: unknown) => logger.warn({ knex: text(m) }, 'knex deprecation'),
    debug: (m: unknown) => logger.debug({ knex: text(m) }, 'knex debug'),
  };
}

export function createDb(config: DatabaseConfig, options: { applicationName?: string; logger?: Logger } = {}): Db {
  return knexFactory({
    ...(options.logger ? { log: knexLog(options.logger) } : {}),
    client: 'pg',
    connection: {
      connectionString: config.DATABASE_URL,
      application_name: options.applicationName ?? 'integration-hub',
    },
    searchPath: [config.DATABASE_SCHEMA],
    pool: { min: 0, max: config.DATABASE_POOL_MAX },
    acquireConnectionTimeout: 10_000,
  });
}

/** Quotes an SQL identifier (schema names come from validated config, this is defence in depth). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `select 1` with a deadline, for readiness probes. */
export async function pingDb(db: Db, timeoutMs = 2_000): Promise<void> {
  await db.raw('select 1').timeout(timeoutMs, { cancel: true });
}

/**
 * Inserts `row`, or updates every other column of the row with the same `name`: how resources
 * (integrations, partners) are applied. `created` tells which happened (xmax is 0 for an insert).
 */
export async function upsertByName(db: Knex, table: string, row: Record<string, unknown> & { name: string }): Promise<{ id: string; created: boolean }> {
  const sets = Object.keys(row).filter((c) => c !== 'name').map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`);
  const { rows } = await db.raw<{ rows: { id: string; created: boolean }[] }>(
    `? on conflict (name) do update set ${[...sets, 'updated_at = now()'].join(', ')} returning id, (xmax = 0) as created`,
    [db(table).insert(row)],
  );
  const first = rows[0];
  if (!first) throw new Error(`upsert into ${table} of ${row.name} returned nothing`);
  return { id: String(first.id), created: first.created };
}
