// The open path's writes under group commit, on a real PostgreSQL: concurrent opens share one
// INSERT, concurrent replies one gated UPDATE, concurrent push marks one UPDATE, and every caller
// still gets its own answer: a duplicate reply in the same batch is a duplicate, a reply from the
// wrong partner does not hide the right partner's reply to the same command.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { COMMANDS, CommandStore } from '../services/domains/smart-home/command-store.js';
import { createTestContext, type TestContext } from './support/context.js';

let ctx: TestContext;
let store: CommandStore;
const statements: string[] = [];

beforeAll(async () => {
  ctx = await createTestContext('cmdbatch');
  ctx.db.on('query', (q: { sql: string }) => statements.push(q.sql));
  store = new CommandStore(ctx.db);
});
afterAll(async () => {
  await ctx?.close();
});

const newCommand = (tenantId: string) => ({
  commandId: randomUUID(),
  tenantId,
  service: 'intercom' as const,
  partner: 'acme',
  ttlMs: 60_000,
});

const count = (pattern: RegExp) => statements.filter((s) => pattern.test(s)).length;

test('200 concurrent opens are recorded by a few INSERTs, each caller getting its own command', async () => {
  statements.length = 0;
  const asked = Array.from({ length: 200 }, (_, i) => newCommand(`tenant-${i}`));
  const recorded = await Promise.all(asked.map((c) => store.create(c)));
  expect(recorded.map((r) => [r.commandId, r.tenantId, r.status])).toEqual(
    asked.map((c) => [c.commandId, c.tenantId, 'pending']),
  );
  for (const r of recorded) {
    expect(r.deadline.getTime() - r.createdAt.getTime()).toBe(60_000);
  }
  const inserts = count(/^insert into smart_home_commands/);
  expect(inserts).toBeGreaterThanOrEqual(1);
  expect(inserts).toBeLessThanOrEqual(10);
});

test('replies applied together: one UPDATE; a duplicate in the batch is a duplicate, a wrong partner does not hide the right one', async () => {
  const [a, b, ...rest] = await Promise.all(
    Array.from({ length: 50 }, (_, i) => store.create(newCommand(`tenant-r${i}`))),
  );
  if (!a || !b) throw new Error('commands not created');
  statements.length = 0;
  const acme = { partner: 'acme', service: 'intercom' as const };
  const results = await Promise.all([
    store.settle(a.commandId, 'opened', acme),
    store.settle(a.commandId, 'opened', acme),
    // Another partner's reply first, then the partner asked: the second still applies.
    store.settle(b.commandId, 'opened', { ...acme, partner: 'intruder' }),
    store.settle(b.commandId, 'failed', { ...acme, reason: 'jammed' }),
    ...rest.map((c) => store.settle(c.commandId, 'opened', acme)),
  ]);
  expect(results.slice(0, 4).map((r) => r.result)).toEqual([
    'settled',
    'duplicate',
    'mismatched_partner',
    'settled',
  ]);
  expect(results.slice(4).every((r) => r.result === 'settled' && r.ended)).toBe(true);
  expect(results[3]?.ended).toMatchObject({ status: 'failed', reason: 'jammed' });
  // The batch's UPDATE, then (at most) a second one for the command whose first copy missed.
  expect(count(/^update smart_home_commands c/)).toBeLessThanOrEqual(4);

  statements.length = 0;
  const ended = [a, b, ...rest].map((c) => c.commandId);
  await Promise.all(ended.map((id) => store.markPushed([id])));
  expect(count(/^update "smart_home_commands" set "push_due_at"/)).toBeLessThanOrEqual(3);
  const due = await ctx.db(COMMANDS).whereIn('command_id', ended).whereNotNull('push_due_at');
  expect(due).toEqual([]);
});

test('a batch whose rows would all fail for one bad row fails only that row', async () => {
  const good = newCommand('tenant-good');
  const duplicateId = newCommand('tenant-dup');
  await store.create(duplicateId);
  const [ok, refused] = await Promise.allSettled([
    store.create(good),
    // The same command id again: its INSERT fails, and only its caller hears of it.
    store.create({ ...duplicateId, tenantId: 'tenant-dup-again' }),
  ]);
  expect(ok).toMatchObject({ status: 'fulfilled', value: { commandId: good.commandId } });
  expect(refused.status).toBe('rejected');
});
