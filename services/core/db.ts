// PostgreSQL access through knex: one pool per process, every connection pinned to the hub's schema.
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
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
    warn: (m: unknown) =>
      CONNECTION_NOISE.test(text(m))
        ? logger.debug({ knex: text(m) }, 'database connection attempt failed')
        : logger.warn({ knex: text(m) }, 'knex warning'),
    error: (m: unknown) => logger.error({ knex: text(m) }, 'knex error'),
    deprecate: (m: unknown) => logger.warn({ knex: text(m) }, 'knex deprecation'),
    debug: (m: unknown) => logger.debug({ knex: text(m) }, 'knex debug'),
  };
}

export function createDb(
  config: DatabaseConfig,
  options: { applicationName?: string; logger?: Logger } = {},
): Db {
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

/**
 * Through a transaction-mode pooler (DATABASE_SESSION_URL set apart from DATABASE_URL), knex's
 * per-connection `set search_path` stays on whichever server connection ran it, and later
 * transactions may run on others: the schema must come from the server's side (ALTER ROLE … SET
 * search_path, or the pooler's connect_query). Asks a connection that set nothing where unqualified
 * tables resolve; returns what is wrong, or undefined. A server connection that another client's
 * SET already reached can pass where a fresh one would not, so this finds a missing setting on a
 * fresh pooler, not always on a warm one.
 */
export async function pooledSearchPathProblem(config: DatabaseConfig): Promise<string | undefined> {
  if (!config.DATABASE_SESSION_URL || config.DATABASE_SESSION_URL === config.DATABASE_URL) {
    return undefined;
  }
  const client = new pg.Client({
    connectionString: config.DATABASE_URL,
    application_name: 'hub-search-path-check',
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query<{ first: string | null; role: string; db: string }>(
      'select (current_schemas(false))[1] as first, current_user as role, current_database() as db',
    );
    const { first, role, db } = rows[0] ?? { first: null, role: '?', db: '?' };
    if (first === config.DATABASE_SCHEMA) return undefined;
    return (
      `DATABASE_URL goes through a connection pooler (DATABASE_SESSION_URL is set apart from it) and its connections ` +
      `resolve tables in ${first ? `schema ${first}` : 'no schema'}, not DATABASE_SCHEMA ${config.DATABASE_SCHEMA}: a per-connection ` +
      `SET does not survive transaction pooling. Run ALTER ROLE ${quoteIdent(role)} IN DATABASE ${quoteIdent(db)} SET search_path = ` +
      `${quoteIdent(config.DATABASE_SCHEMA)} (or set it in the pooler's connect_query), after the migration has created the schema.`
    );
  } finally {
    await client.end().catch(() => undefined);
  }
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
export async function upsertByName(
  db: Knex,
  table: string,
  row: Record<string, unknown> & { name: string },
): Promise<{ id: string; created: boolean }> {
  const sets = Object.keys(row)
    .filter((c) => c !== 'name')
    .map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`);
  const { rows } = await db.raw<{ rows: { id: string; created: boolean }[] }>(
    `? on conflict (name) do update set ${[...sets, 'updated_at = now()'].join(', ')} returning id, (xmax = 0) as created`,
    [db(table).insert(row)],
  );
  const first = rows[0];
  if (!first) throw new Error(`upsert into ${table} of ${row.name} returned nothing`);
  return { id: String(first.id), created: first.created };
}
