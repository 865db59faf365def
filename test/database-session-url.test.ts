// The two database URLs: the pool goes to DATABASE_URL (a PgBouncer in transaction mode in
// production), the LISTEN connection to DATABASE_SESSION_URL (PostgreSQL itself), which defaults
// to DATABASE_URL.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { databaseEnv, loadConfig, sessionDatabaseUrl } from '../services/core/config.js';
import { WORK_CHANNEL, WorkListener } from '../services/core/engine/notify.js';
import { freePort } from '../services/core/net.js';
import { createTestContext, DATABASE_URL, waitFor, type TestContext } from './support/context.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext('session');
});
afterAll(async () => {
  await ctx.close();
});

/** Listens through the service's own wiring and counts the wake-ups for `table`. */
async function listening(
  env: Record<string, string>,
): Promise<{ wakes: () => number; stop: () => Promise<void> }> {
  const config = loadConfig(databaseEnv, { ...env, DATABASE_SCHEMA: ctx.schema });
  const listener = WorkListener.fromConfig(config, ctx.logger);
  let wakes = 0;
  listener.on('session_probe', () => wakes++);
  await listener.start(10_000);
  return { wakes: () => wakes, stop: () => listener.stop() };
}

/** Notifies until the listener has been woken by a notification (its first wake is the start's own). */
async function notifiedAfter(l: { wakes: () => number }): Promise<boolean> {
  const before = l.wakes();
  return waitFor(
    async () => {
      await ctx.db.raw('select pg_notify(?, ?)', [WORK_CHANNEL, `${ctx.schema}.session_probe`]);
      return l.wakes() > before;
    },
    20_000,
    'a NOTIFY to reach the listener',
  );
}

describe('DATABASE_SESSION_URL', () => {
  test("the LISTEN connection uses DATABASE_SESSION_URL, not the pool's DATABASE_URL", async () => {
    // Nothing answers at the pool's URL: a listener on it would never hear the notification.
    const deadPool = `postgres://nobody@127.0.0.1:${await freePort()}/test`;
    const l = await listening({ DATABASE_URL: deadPool, DATABASE_SESSION_URL: DATABASE_URL });
    try {
      expect(await notifiedAfter(l)).toBe(true);
    } finally {
      await l.stop();
    }
  }, 60_000);

  test('without DATABASE_SESSION_URL the LISTEN connection uses DATABASE_URL', async () => {
    expect(sessionDatabaseUrl(loadConfig(databaseEnv, { DATABASE_URL }))).toBe(DATABASE_URL);
    const l = await listening({ DATABASE_URL });
    try {
      expect(await notifiedAfter(l)).toBe(true);
    } finally {
      await l.stop();
    }
  }, 60_000);

  test('a DATABASE_SESSION_URL that is not a PostgreSQL URL and a DATABASE_POOL_MAX out of range are named', () => {
    expect(() =>
      loadConfig(databaseEnv, { DATABASE_URL, DATABASE_SESSION_URL: 'redis://cache:6379' }),
    ).toThrow(/DATABASE_SESSION_URL must be a URL with scheme postgres: or postgresql:/);
    expect(() => loadConfig(databaseEnv, { DATABASE_URL, DATABASE_POOL_MAX: '0' })).toThrow(
      /DATABASE_POOL_MAX/,
    );
    expect(() => loadConfig(databaseEnv, { DATABASE_URL, DATABASE_POOL_MAX: '500' })).toThrow(
      /DATABASE_POOL_MAX/,
    );
  });
});
