// The `hub` CLI as an operator runs it: a real process against a test schema.
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { run, runHubCli } from './support/tools.js';
import { freePort } from '../services/core/net.js';
import {
  createTestContext,
  DATABASE_URL,
  uniqueName,
  type TestContext,
} from './support/context.js';
import { addIntegration, count } from './support/allio.js';
import { verifyApiKey } from '../services/core/auth/api-keys.js';
import { hashWebhookKey } from '../services/domains/allio/webhook-key.js';

let ctx: TestContext;
let dir: string;

// Each command is a process compiling the CLI through tsx: seconds apiece on a loaded 2-core machine,
// and a test runs up to six of them.
jest.setTimeout(120_000);

beforeAll(async () => {
  ctx = await createTestContext('cli');
  dir = await mkdtemp(path.join(tmpdir(), 'hub-cli-'));
});
afterAll(async () => {
  await ctx.close();
});

const hub = (args: string[], env: Record<string, string> = {}) =>
  runHubCli(DATABASE_URL, ctx.schema, args, env);

const integrationYaml = (name: string, extra = '') => `
apiVersion: integration-hub.io/v1alpha1
kind: AllioIntegration
metadata:
  name: ${name}
spec:
  integrationUuid: 3f1e9a52-6c1d-4b8e-9f0a-2b7c5d4e6a10
  webhookKey: key-${name}-0123456789
  apiBaseUrl: http://127.0.0.1:4010
  apiToken: secret-token-value
${extra}`;

describe('hub CLI', () => {
  test('migrate reports an up-to-date schema', async () => {
    const r = await hub(['migrate']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`schema ${ctx.schema} is up to date`);
  });

  test('apply creates, then configures, integrations from multi-document YAML without printing secrets', async () => {
    const file = path.join(dir, 'two.yaml');
    const second = integrationYaml('beta').replace(
      '3f1e9a52-6c1d-4b8e-9f0a-2b7c5d4e6a10',
      '0b9a8c7d-1e2f-4a3b-8c4d-5e6f7a8b9c0d',
    );
    await writeFile(file, `${integrationYaml('alpha')}---${second}`);
    const first = await hub(['apply', '-f', file]);
    expect(first.stdout).toBe('allioIntegration/alpha created\nallioIntegration/beta created\n');
    const again = await hub(['apply', '-f', file]);
    expect(again.stdout).toBe(
      'allioIntegration/alpha configured\nallioIntegration/beta configured\n',
    );
    expect(first.stdout + first.stderr + again.stdout + again.stderr).not.toContain(
      'secret-token-value',
    );
    expect(await count(ctx.db, 'allio_integrations', { name: 'alpha' })).toBe(1);
  });

  test('apply of an invalid document names the field and applies nothing', async () => {
    const file = path.join(dir, 'bad.yaml');
    await writeFile(
      file,
      `${integrationYaml('gamma').replace('3f1e9a52-6c1d-4b8e-9f0a-2b7c5d4e6a10', '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f')}---${integrationYaml('delta', '  deletionControl: maybe\n')}`,
    );
    const r = await hub(['apply', '-f', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('document 2: spec.deletionControl');
    expect(await count(ctx.db, 'allio_integrations', { name: 'gamma' })).toBe(0);
  });

  test('apply reads a webhookKeySecretRef from the Secret mounted under SECRETS_DIR and stores only its hash', async () => {
    const secrets = await mkdtemp(path.join(tmpdir(), 'hub-secrets-'));
    await mkdir(path.join(secrets, 'allio-omega'));
    const key = `omega-${randomUUID()}`;
    await writeFile(path.join(secrets, 'allio-omega', 'webhook-key'), `${key}\n`);
    const file = path.join(dir, 'secret-key.yaml');
    await writeFile(
      file,
      integrationYaml('omega')
        .replace('3f1e9a52-6c1d-4b8e-9f0a-2b7c5d4e6a10', '5e4d3c2b-1a09-4f8e-9d7c-6b5a49382716')
        .replace(
          'webhookKey: key-omega-0123456789',
          'webhookKeySecretRef: { name: allio-omega, key: webhook-key }',
        ),
    );
    const r = await hub(['apply', '-f', file], { SECRETS_DIR: secrets });
    expect(r).toMatchObject({ code: 0, stdout: 'allioIntegration/omega created\n' });
    const row = await ctx.db('allio_integrations').where({ name: 'omega' }).first();
    expect(row.webhook_key_hash).toBe(hashWebhookKey(key));
    expect(JSON.stringify(row) + r.stdout + r.stderr).not.toContain(key);
  });

  test('apply of a webhookKeySecretRef whose Secret is not mounted names the Secret and applies nothing', async () => {
    const file = path.join(dir, 'missing-secret.yaml');
    await writeFile(
      file,
      integrationYaml('sigma')
        .replace('3f1e9a52-6c1d-4b8e-9f0a-2b7c5d4e6a10', '6f5e4d3c-2b1a-4098-8e7d-6c5b4a392817')
        .replace(
          'webhookKey: key-sigma-0123456789',
          'webhookKeySecretRef: { name: allio-sigma, key: webhook-key }',
        ),
    );
    const r = await hub(['apply', '-f', file], { SECRETS_DIR: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Secret allio-sigma/webhook-key is not mounted');
    expect(await count(ctx.db, 'allio_integrations', { name: 'sigma' })).toBe(0);
  });

  test('a missing DATABASE_URL stops the CLI with a message naming it', async () => {
    const r = await hub(['migrate'], { DATABASE_URL: '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('DATABASE_URL is required');
  });

  test('tasks list shows failed tasks and tasks retry re-queues them', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: 'http://127.0.0.1:9', name: 'cli-failing' });
    const [row] = await ctx
      .db('allio_tasks')
      .insert({
        integration_id: it.id,
        command: 'RESERVE_ADD',
        entity: 'reserve',
        op: 'upsert',
        external_ids: '[1]',
        status: 3,
        attempts: 8,
        last_error: 'HttpError: ALLIO answered 401',
      })
      .returning('id');
    const list = await hub(['tasks', 'list', '--json', '--integration', 'cli-failing']);
    const listed = list.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: number; status: string; last_error: string });
    expect(listed).toEqual([
      expect.objectContaining({
        id: Number(row.id),
        status: 'failed',
        last_error: expect.stringContaining('401'),
      }),
    ]);

    const retry = await hub(['tasks', 'retry', '--all-failed', '--integration', 'cli-failing']);
    expect(retry.stdout).toContain(`re-queued 1 task(s): ${row.id}`);
    const task = await ctx.db('allio_tasks').where({ id: row.id }).first();
    expect(task).toMatchObject({ status: 0, attempts: 0 });
    expect((await hub(['tasks', 'retry'])).stderr).toContain('give task ids, or --all-failed');
  });

  test('apply reads SmartHomePartner next to AllioIntegration, and smart-home list/retry replay a failed request', async () => {
    const file = path.join(dir, 'partner.yaml');
    await writeFile(
      file,
      `${integrationYaml('gamma').replace('3f1e9a52-6c1d-4b8e-9f0a-2b7c5d4e6a10', '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f')}---
apiVersion: integration-hub.io/v1alpha1
kind: SmartHomePartner
metadata:
  name: domofon
spec:
  services: [intercom]
`,
    );
    const applied = await hub(['apply', '-f', file]);
    expect(applied.stdout).toContain('smartHomePartner/domofon created');
    const partner = await ctx.db('smart_home_partners').where({ name: 'domofon' }).first();
    expect(partner).toMatchObject({
      services: ['intercom'],
      command_queue: 'partner.domofon.commands',
      oauth_client_id: 'domofon',
      active: true,
    });

    const [sub] = await ctx
      .db('smart_home_subscriptions')
      .insert({
        tenant_id: 't-cli',
        service: 'intercom',
        partner_id: partner.id,
        partner_ref: crypto.randomUUID(),
        state: 'failed',
        last_operation: 'connect',
      })
      .returning('id');
    const requestId = crypto.randomUUID();
    await ctx.db('smart_home_requests').insert({
      request_uuid: requestId,
      subscription_id: sub.id,
      tenant_id: 't-cli',
      kind: 'connect',
      status: 3,
      attempts: 4,
      last_error: 'the partner did not reply to 4 attempts',
    });
    const listed = await hub(['smart-home', 'list', '--json']);
    expect(listed.stdout).toContain(requestId);
    expect(listed.stdout).toContain('did not reply');
    const retried = await hub(['smart-home', 'retry', '--all-failed']);
    expect(retried.stdout).toBe(`re-queued 1 request(s): ${requestId}\n`);
    expect(
      await ctx.db('smart_home_requests').where({ request_uuid: requestId }).first(),
    ).toMatchObject({ state: 'ready_for_request', status: 0, attempts: 0 });
    expect((await ctx.db('smart_home_subscriptions').where({ id: sub.id }).first()).state).toBe(
      'connecting',
    );
    expect((await hub(['smart-home', 'retry', 'not-a-uuid'])).code).toBe(1);
  });

  test('apply gives a partner its OAuth client; auth secret prints a secret once; auth clients and events never show secrets', async () => {
    const file = path.join(dir, 'partner-auth.yaml');
    const yaml = (active: boolean) => `apiVersion: integration-hub.io/v1alpha1
kind: SmartHomePartner
metadata:
  name: shlagbaum
spec:
  services: [barrier]
  oauthClientId: shlagbaum-client
  active: ${active}
`;
    await writeFile(file, yaml(true));
    expect((await hub(['apply', '-f', file], { RABBITMQ_PARTNER_VHOST: 'partners' })).code).toBe(0);
    expect(
      await ctx.db('auth_clients').where({ client_id: 'shlagbaum-client' }).first(),
    ).toMatchObject({
      partner: 'shlagbaum',
      active: true,
      secret_hash: null,
      scopes: [
        'rabbitmq.read:partners/partner.shlagbaum.commands',
        'rabbitmq.write:partners/smart-home.replies/shlagbaum',
      ],
    });
    const issued = await hub(['auth', 'secret', 'shlagbaum-client']);
    expect(issued.code).toBe(0);
    const secret = issued.stdout.trim();
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(issued.stderr).toContain('cannot be shown again');
    const listed = await hub(['auth', 'clients', '--json']);
    expect(listed.stdout).toContain('"client_id":"shlagbaum-client"');
    expect(listed.stdout).toContain('"has_secret":true');
    expect(listed.stdout).not.toContain(secret);
    expect(listed.stdout).not.toContain('sha256:');
    await ctx.db('auth_token_events').insert({
      client_id: 'shlagbaum-client',
      outcome: 'bad_secret',
      source_address: '10.0.0.7',
      error: 'invalid secret provided',
    });
    const events = await hub([
      'auth',
      'events',
      '--failures',
      '--client',
      'shlagbaum-client',
      '--json',
    ]);
    expect(events.stdout).toContain('"outcome":"bad_secret"');
    expect(events.stdout).toContain('10.0.0.7');
    await writeFile(file, yaml(false));
    expect((await hub(['apply', '-f', file])).code).toBe(0);
    expect(
      (await ctx.db('auth_clients').where({ client_id: 'shlagbaum-client' }).first()).active,
    ).toBe(false);
    expect((await hub(['auth', 'secret', 'nobody'])).stderr).toContain('no client "nobody"');
  });

  test('api-keys create prints a key once that the kitchen accepts until it is revoked; list never shows secrets', async () => {
    const created = await hub([
      'api-keys',
      'create',
      '--name',
      'terminal 3',
      '--role',
      'kitchen-operator',
    ]);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^hk_[a-z0-9]{12}_[A-Za-z0-9_-]{32,64}$/);
    const id = key.split('_')[1] as string;
    expect((await verifyApiKey(ctx.db, key)).roles).toEqual(['kitchen-operator']);
    const listed = await hub(['api-keys', 'list', '--json']);
    expect(listed.stdout).toContain(id);
    // The secret is everything after the id; it may itself hold '_' (base64url).
    expect(listed.stdout).not.toContain(/^hk_[a-z0-9]+_(.+)$/.exec(key)?.[1] ?? key);
    expect((await hub(['api-keys', 'create', '--name', 'x', '--role', 'tenant'])).code).toBe(1);
    expect((await hub(['api-keys', 'revoke', id])).stdout).toBe(`revoked ${id}\n`);
    await expect(verifyApiKey(ctx.db, key)).rejects.toThrow(/unknown, revoked/);
  });

  test('tasks list shows the most recent tasks of every status after a count per status; --status still filters', async () => {
    const it = await addIntegration(ctx.db, {
      baseUrl: 'http://127.0.0.1:9',
      name: 'cli-every-state',
    });
    const task = (status: number, id: number) => ({
      integration_id: it.id,
      command: 'RESERVE_ADD',
      entity: 'reserve',
      op: 'upsert',
      external_ids: `[${id}]`,
      status,
    });
    const ids = (
      await ctx
        .db('allio_tasks')
        .insert([task(2, 1), task(2, 2), task(0, 3), task(3, 4)])
        .returning('id')
    ).map((r: { id: string }) => r.id);
    const listed = await hub(['tasks', 'list', '--integration', 'cli-every-state']);
    expect(listed.code).toBe(0);
    expect(listed.stdout.split('\n')[0]).toBe('4 tasks: 1 new, 0 in-progress, 2 done, 1 failed');
    for (const id of ids) expect(listed.stdout).toMatch(new RegExp(`│\\s+${id}\\s+│`));
    const failed = await hub([
      'tasks',
      'list',
      '--status',
      'failed',
      '--integration',
      'cli-every-state',
      '--json',
    ]);
    expect(
      failed.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { id: number }).id),
    ).toEqual([Number(ids[3])]);
    const none = await hub([
      'tasks',
      'list',
      '--status',
      'in-progress',
      '--integration',
      'cli-every-state',
    ]);
    expect(none.stdout).toBe(
      '4 tasks: 1 new, 0 in-progress, 2 done, 1 failed\nno in-progress tasks\n',
    );
  });

  test('smart-home list shows the most recent requests of every state after a count per state', async () => {
    const partner = await ctx.db('smart_home_partners').first('id');
    const [sub] = await ctx
      .db('smart_home_subscriptions')
      .insert({
        tenant_id: 't-cli-states',
        service: 'barrier',
        partner_id: partner.id,
        partner_ref: crypto.randomUUID(),
        state: 'connected',
        last_operation: 'connect',
      })
      .returning('id');
    const done = crypto.randomUUID();
    await ctx.db('smart_home_requests').insert({
      request_uuid: done,
      subscription_id: sub.id,
      tenant_id: 't-cli-states',
      kind: 'connect',
      status: 2,
      attempts: 1,
    });
    const counts: Record<string, number> = Object.fromEntries(
      (await ctx.db('smart_home_requests').select('state').count('* as n').groupBy('state')).map(
        (r) => [r.state, Number(r.n)],
      ),
    );
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const listed = await hub(['smart-home', 'list']);
    expect(listed.code).toBe(0);
    expect(listed.stdout.split('\n')[0]).toBe(
      `${total} requests: ${counts.ready_for_request ?? 0} ready_for_request, ${counts.requested ?? 0} requested, ${counts.complete ?? 0} complete, ${counts.failed ?? 0} failed`,
    );
    expect(listed.stdout).toContain(done);
    expect((await hub(['smart-home', 'list', '--state', 'failed', '--json'])).stdout).not.toContain(
      done,
    );
  });

  test("in a checkout without DATABASE_SCHEMA the CLI uses npm start's schema hub, and tells an unmigrated one instead of a raw SQL error", async () => {
    // A database of its own, so that its schema `hub` is this test's alone.
    const database = uniqueName('hubcli');
    await ctx.db.raw(`create database "${database}"`);
    const url = Object.assign(new URL(DATABASE_URL), { pathname: `/${database}` }).toString();
    const cli = (args: string[]) =>
      run(process.execPath, ['--import', 'tsx', 'services/cli/main.ts', ...args], {
        env: { PATH: process.env.PATH ?? '', DATABASE_URL: url },
      });
    try {
      const before = await cli(['tasks', 'list']);
      expect(before.code).toBe(1);
      expect(before.stderr).toContain(`schema "hub" at ${url} is not migrated`);
      expect(before.stderr).toContain('Run `npx hub migrate`');
      expect((await cli(['migrate'])).stdout).toMatch(/^applied: /);
      const after = await cli(['tasks', 'list']);
      expect(after).toMatchObject({
        code: 0,
        stdout: '0 tasks: 0 new, 0 in-progress, 0 done, 0 failed\nno tasks\n',
      });
    } finally {
      await ctx.db.raw(`drop database if exists "${database}" with (force)`);
    }
  }, 60_000);

  test('a DATABASE_URL where nothing listens is told with how to start PostgreSQL', async () => {
    const port = await freePort();
    const r = await runHubCli(`postgres://postgres@127.0.0.1:${port}/postgres`, ctx.schema, [
      'tasks',
      'list',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `PostgreSQL at postgres://postgres@127.0.0.1:${port}/postgres (DATABASE_URL): nothing answers`,
    );
    expect(r.stderr).toContain('sudo apt-get install -y postgresql');
    expect(r.stderr).toContain('docker compose up -d postgres');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
