// The webhook-key cache without a database: one read per key, expiry, and that a read begun before
// a change never stores what it read.
import { expect, test } from '@jest/globals';
import { IntegrationCache } from './integration-cache.js';
import type { Integration } from './integrations.js';
import { hashWebhookKey } from './webhook-key.js';

const integration = (name: string, active = true): Integration => ({
  id: '1',
  name,
  integration_uuid: '00000000-0000-4000-8000-000000000001',
  webhook_key_hash: 'h',
  api_base_url: 'http://x',
  api_token: 't',
  api_token_secret_name: null,
  api_token_secret_key: null,
  deletion_control: false,
  active,
  weight: 1,
});

function source(initial: Integration | undefined) {
  let row = initial;
  const reads: string[] = [];
  let hold: Promise<void> | undefined;
  const load = async (hash: string) => {
    reads.push(hash);
    const seen = row;
    await hold;
    return seen;
  };
  return {
    load,
    reads,
    set: (r: Integration | undefined) => (row = r),
    holdUntil: (p: Promise<void> | undefined) => (hold = p),
  };
}

test('concurrent and repeated lookups of one key read it once, by its hash', async () => {
  const s = source(integration('a'));
  const cache = new IntegrationCache(s.load, { ttlMs: 60_000, maxEntries: 10 });
  const found = await Promise.all([
    cache.findByWebhookKey('key-a'),
    cache.findByWebhookKey('key-a'),
  ]);
  expect(found.map((f) => f?.name)).toEqual(['a', 'a']);
  expect((await cache.findByWebhookKey('key-a'))?.name).toBe('a');
  expect(s.reads).toEqual([hashWebhookKey('key-a')]);
});

test('an entry is read again after ttlMs, and an unknown key is never cached', async () => {
  let now = 0;
  const s = source(undefined);
  const cache = new IntegrationCache(s.load, { ttlMs: 1_000, maxEntries: 10, now: () => now });
  expect(await cache.findByWebhookKey('k')).toBeUndefined();
  s.set(integration('b'));
  expect((await cache.findByWebhookKey('k'))?.name).toBe('b');
  s.set(integration('b', false));
  now = 999;
  expect((await cache.findByWebhookKey('k'))?.active).toBe(true);
  now = 1_000;
  expect((await cache.findByWebhookKey('k'))?.active).toBe(false);
  expect(s.reads).toHaveLength(3);
});

test('a read that began before invalidate() answers its caller but is not kept', async () => {
  const s = source(integration('old'));
  const cache = new IntegrationCache(s.load, { ttlMs: 60_000, maxEntries: 10 });
  let release!: () => void;
  s.holdUntil(new Promise<void>((r) => (release = r)));
  const before = cache.findByWebhookKey('k');
  await Promise.resolve();
  s.set(integration('new'));
  cache.invalidate();
  s.holdUntil(undefined);
  release();
  expect((await before)?.name).toBe('old');
  expect((await cache.findByWebhookKey('k'))?.name).toBe('new');
});

test('past maxEntries the oldest entry is dropped', async () => {
  const s = source(integration('x'));
  const cache = new IntegrationCache(s.load, { ttlMs: 60_000, maxEntries: 2 });
  for (const k of ['k1', 'k2', 'k3', 'k1']) await cache.findByWebhookKey(k);
  expect(s.reads).toEqual(['k1', 'k2', 'k3', 'k1'].map(hashWebhookKey));
});
