// The production wiring of docs/deployment.md "Database connections" on a real PgBouncer in
// transaction mode: the pools (migrations included) go through it with the schema set on the role,
// and the LISTEN connection goes to PostgreSQL itself through DATABASE_SESSION_URL, because a
// LISTEN through transaction pooling never hears its notifications.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { pino } from 'pino';
import { createDb, type Db } from '../services/core/db.js';
import { baseEnv, databaseEnv, loadConfig } from '../services/core/config.js';
import { WORK_CHANNEL, WorkListener } from '../services/core/engine/notify.js';
import { migrate } from '../services/core/migrate.js';
import { migrations } from '../services/core/migrations/index.js';
import { processBasics, StartupDependencyError } from '../services/core/runtime.js';
import { DATABASE_URL, uniqueName, waitFor } from './support/context.js';
import { startPgBouncer } from './support/own-servers.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const direct = new URL(DATABASE_URL);
const dbname = direct.pathname.slice(1);
const role = uniqueName('hub_pgb');
/** A role without the search_path setting, as a PgBouncer installation that skipped it has. */
const bare = uniqueName('hub_pgb_bare');
const schema = uniqueName('t_pgb');
/** PgBouncer's server connections for the hub's database and user, far fewer than the clients. */
const SERVER_CONNECTIONS = 2;

let admin: Db;
let bouncer: Awaited<ReturnType<typeof startPgBouncer>>;
let pooledUrl: string;
let sessionUrl: string;
const pools: Db[] = [];
const pool = (max: number) => {
  const db = createDb({ DATABASE_URL: pooledUrl, DATABASE_SCHEMA: schema, DATABASE_POOL_MAX: max });
  pools.push(db);
  return db;
};

beforeAll(async () => {
  admin = createDb({ DATABASE_URL, DATABASE_SCHEMA: 'public', DATABASE_POOL_MAX: 2 });
  await admin.raw(`create role "${role}" login`);
  await admin.raw(`grant connect, create on database "${dbname}" to "${role}"`);
  await admin.raw(`create role "${bare}" login`);
  await admin.raw(`grant connect on database "${dbname}" to "${bare}"`);
  // What docs/deployment.md asks of a PgBouncer installation: knex's per-connection SET does not
  // follow transactions onto other server connections, the role's setting does.
  await admin.raw(`alter role "${role}" in database "${dbname}" set search_path = "${schema}"`);
  bouncer = await startPgBouncer(
    { host: direct.hostname, port: Number(direct.port || 5432), dbname },
    { users: [role, bare], serverConnections: SERVER_CONNECTIONS },
  );
  pooledUrl = `postgres://${role}@127.0.0.1:${bouncer.port}/${dbname}`;
  sessionUrl = `postgres://${role}@${direct.host}/${dbname}`;
}, 60_000);

afterAll(async () => {
  await Promise.all(pools.map((d) => d.destroy()));
  await bouncer?.close();
  await admin.raw(`drop schema if exists "${schema}" cascade`);
  await admin.raw(`drop owned by "${role}"`);
  await admin.raw(`drop role if exists "${role}"`);
  await admin.raw(`drop owned by "${bare}"`);
  await admin.raw(`drop role if exists "${bare}"`);
  await admin.destroy();
});

/** Listens through the service's wiring on `env` and counts wake-ups for periodic_runs. */
async function listening(
  env: Record<string, string>,
): Promise<{ wakes: () => number; stop: () => Promise<void> }> {
  const listener = WorkListener.fromConfig(
    loadConfig(databaseEnv, { ...env, DATABASE_SCHEMA: schema }),
    logger,
  );
  let wakes = 0;
  listener.on('periodic_runs', () => wakes++);
  await listener.start(10_000);
  return { wakes: () => wakes, stop: () => listener.stop() };
}

/** A NOTIFY sent the way the hub sends it: in a transaction of a pool that goes through PgBouncer. */
async function notifyThroughPool(db: Db): Promise<void> {
  await db.transaction((trx) =>
    trx.raw('select pg_notify(?, ?)', [WORK_CHANNEL, `${schema}.periodic_runs`]),
  );
}

describe('through PgBouncer in transaction mode', () => {
  test('two pods migrate at once and sixteen clients write and read the schema over two server connections', async () => {
    const [a, b] = [pool(8), pool(8)];
    const [ra, rb] = await Promise.all([migrate(a, schema), migrate(b, schema)]);
    expect(ra.applied.length + rb.applied.length).toBe(migrations.length);
    await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        (i % 2 ? a : b)('periodic_runs').insert({
          name: 'pgbouncer',
          period_key: `p${i}`,
          next_attempt_at: new Date(),
        }),
      ),
    );
    // Unqualified, like every query of the hub: the role's search_path finds the schema.
    const counted = await a.raw<{ rows: { n: number }[] }>(
      `select count(*)::int as n from periodic_runs where name = 'pgbouncer'`,
    );
    expect(counted.rows[0]!.n).toBe(16);
    const { rows } = await admin.raw<{ rows: { n: string }[] }>(
      'select count(*) as n from pg_stat_activity where usename = ?',
      [role],
    );
    expect(Number(rows[0]!.n)).toBeLessThanOrEqual(SERVER_CONNECTIONS);
  }, 120_000);

  test('a service refuses to start through PgBouncer when its role does not set the schema, naming the ALTER ROLE to run', async () => {
    const start = (user: string) =>
      processBasics(
        'pgbouncer-test',
        loadConfig(baseEnv.merge(databaseEnv), {
          LOG_LEVEL: 'silent',
          DATABASE_SCHEMA: schema,
          DATABASE_POOL_MAX: '2',
          DATABASE_URL: `postgres://${user}@127.0.0.1:${bouncer.port}/${dbname}`,
          DATABASE_SESSION_URL: `postgres://${user}@${direct.host}/${dbname}`,
        }),
      );
    const refused = await start(bare).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(StartupDependencyError);
    expect((refused as Error).message).toContain(
      `ALTER ROLE "${bare}" IN DATABASE "${dbname}" SET search_path = "${schema}"`,
    );
    const { db } = await start(role);
    pools.push(db);
    expect(
      (await db.raw<{ rows: { n: number }[] }>('select count(*)::int as n from hub_migrations'))
        .rows[0]!.n,
    ).toBe(migrations.length);
  }, 60_000);

  test('the LISTEN connection on DATABASE_SESSION_URL hears a NOTIFY committed through PgBouncer', async () => {
    const db = pool(2);
    const l = await listening({ DATABASE_URL: pooledUrl, DATABASE_SESSION_URL: sessionUrl });
    try {
      const before = l.wakes();
      await waitFor(
        async () => {
          await notifyThroughPool(db);
          return l.wakes() > before;
        },
        20_000,
        'the session listener to hear the NOTIFY',
      );
    } finally {
      await l.stop();
    }
  }, 60_000);

  test('a LISTEN through PgBouncer hears nothing, which is why it needs DATABASE_SESSION_URL', async () => {
    const db = pool(2);
    const through = await listening({ DATABASE_URL: pooledUrl });
    const session = await listening({ DATABASE_URL: pooledUrl, DATABASE_SESSION_URL: sessionUrl });
    try {
      const [throughBefore, sessionBefore] = [through.wakes(), session.wakes()];
      // Until the session listener has heard three notifications, the other had the same chances.
      await waitFor(
        async () => {
          await notifyThroughPool(db);
          return session.wakes() >= sessionBefore + 3;
        },
        20_000,
        'three notifications to the session listener',
      );
      expect(through.wakes()).toBe(throughBefore);
    } finally {
      await Promise.all([through.stop(), session.stop()]);
    }
  }, 60_000);
});
