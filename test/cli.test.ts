// The `hub` CLI as an operator runs it: a real process against a test schema.
import { execFile } from 'node:child_process';
import { writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createTestContext, DATABASE_URL, type TestContext } from './support/context.js';
import { addIntegration, count } from './support/allio.js';

const run = promisify(execFile);
let ctx: TestContext;
let dir: string;

beforeAll(async () => {
  ctx = await createTestContext('cli');
  dir = await mkdtemp(path.join(tmpdir(), 'hub-cli-'));
});
afterAll(async () => {
  await ctx.close();
});

async function hub(args: string[], env: Record<string, string> = {}) {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', 'services/cli/main.ts', ...args], {
      env: { PATH: process.env.PATH ?? '', DATABASE_URL, DATABASE_SCHEMA: ctx.schema, ...env },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

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
    const second = integrationYaml('beta').replace('3f1e9a52-6c1d-4b8e-9f0a-2b7c5d4e6a10', '0b9a8c7d-1e2f-4a3b-8c4d-5e6f7a8b9c0d');
    await writeFile(file, `${integrationYaml('alpha')}---${second}`);
    const first = await hub(['apply', '-f', file]);
    expect(first.stdout).toBe('allioIntegration/alpha created\nallioIntegration/beta created\n');
    const again = await hub(['apply', '-f', file]);
    expect(again.stdout).toBe('allioIntegration/alpha configured\nallioIntegration/beta configured\n');
    expect(first.stdout + first.stderr + again.stdout + again.stderr).not.toContain('secret-token-value');
    expect(await count(ctx.db, 'allio_integrations', { name: 'alpha' })).toBe(1);
  });

  test('apply of an invalid document names the field and applies nothing', async () => {
    const file = path.join(dir, 'bad.yaml');
    await writeFile(file, `${integrationYaml('gamma')}---${integrationYaml('delta', '  deletionControl: maybe\n')}`);
    const r = await hub(['apply', '-f', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('document 2: spec.deletionControl');
    expect(await count(ctx.db, 'allio_integrations', { name: 'gamma' })).toBe(0);
  });

  test('a missing DATABASE_URL stops the CLI with a message naming it', async () => {
    const r = await hub(['migrate'], { DATABASE_URL: '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('DATABASE_URL is required');
  });

  test('tasks list shows failed tasks and tasks retry re-queues them', async () => {
    const it = await addIntegration(ctx.db, { baseUrl: 'http://127.0.0.1:9', name: 'cli-failing' });
    const [row] = await ctx.db('allio_tasks')
      .insert({ integration_id: it.id, command: 'RESERVE_ADD', entity: 'reserve', op: 'upsert', external_ids: '[1]', status: 3, attempts: 8, last_error: 'HttpError: ALLIO answered 401' })
      .returning('id');
    const list = await hub(['tasks', 'list', '--json', '--integration', 'cli-failing']);
    const listed = list.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: number; status: string; last_error: string });
    expect(listed).toEqual([expect.objectContaining({ id: Number(row.id), status: 'failed', last_error: expect.stringContaining('401') })]);

    const retry = await hub(['tasks', 'retry', '--all-failed', '--integration', 'cli-failing']);
    expect(retry.stdout).toContain(`re-queued 1 task(s): ${row.id}`);
    const task = await ctx.db('allio_tasks').where({ id: row.id }).first();
    expect(task).toMatchObject({ status: 0, attempts: 0 });
    expect((await hub(['tasks', 'retry'])).stderr).toContain('give task ids, or --all-failed');
  });
});
