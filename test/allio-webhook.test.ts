// ALLIO webhook intake against real PostgreSQL: every response case, and that rejected webhooks
// store nothing.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../services/api/app.js';
import { createLogger } from '../services/core/logger.js';
import { createMetrics } from '../services/core/metrics.js';
import { createTestContext, type TestContext } from './support/context.js';
import { addIntegration, count, type TestIntegration } from './support/allio.js';
import {
  invalidArrayBody,
  listedIssues,
  MAX_ERROR_BYTES,
  MAX_LISTED_ISSUES,
  timedPost,
} from './support/hostile.js';

let ctx: TestContext;
let app: FastifyInstance;
let integration: TestIntegration;
let inactive: TestIntegration;
let base: string;

beforeAll(async () => {
  ctx = await createTestContext('webhook');
  app = buildApi({
    db: ctx.db,
    logger: ctx.logger,
    metrics: ctx.metrics,
    readiness: [],
    bodyLimitBytes: 64 * 1024,
  });
  base = await app.listen({ port: 0, host: '127.0.0.1' });
  integration = await addIntegration(ctx.db, { baseUrl: 'http://127.0.0.1:9' });
  inactive = await addIntegration(ctx.db, { baseUrl: 'http://127.0.0.1:9', active: false });
});
afterAll(async () => {
  await app.close();
  await ctx.close();
});

interface Answer {
  statusCode: number;
  headers: Headers;
  json(): unknown;
}

/** Real HTTP against the listening server. */
async function post(
  key: string,
  payload: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await fetch(`${base}/webhooks/allio/${key}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });
  const text = await res.text();
  return { statusCode: res.status, headers: res.headers, json: () => JSON.parse(text) };
}

describe('allio webhook intake', () => {
  test('a valid webhook is stored with the seed columns and answered 200 after the commit', async () => {
    const res = await post(integration.webhookKey, {
      uuid: integration.uuid,
      command: 'RESERVE_ADD',
      indexes: [111, 222],
    });
    expect(res.statusCode).toBe(200);
    const body = res.json() as { status: string; id: number };
    expect(body.status).toBe('accepted');
    const row = await ctx.db('allio_webhook').where({ id: body.id }).first();
    expect(row).toMatchObject({
      integration_uuid: integration.uuid,
      command: 'RESERVE_ADD',
      external_ids_array: '[111,222]',
      status: 0,
    });
    expect(row.created_at).toBeInstanceOf(Date);
    expect(res.headers.get('x-request-id')).toBe(row.request_id);
  });

  test('an unknown webhook key is answered 404 and stores nothing', async () => {
    const before = await count(ctx.db, 'allio_webhook');
    const res = await post('wh_unknownkey0000000000', {
      uuid: integration.uuid,
      command: 'RESERVE_ADD',
      indexes: [1],
    });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ error: { code: 'integration_not_found' } });
    expect(await count(ctx.db, 'allio_webhook')).toBe(before);
  });

  test('a foreign uuid is rejected with 403 and stores nothing', async () => {
    const before = await count(ctx.db, 'allio_webhook');
    const res = await post(integration.webhookKey, {
      uuid: inactive.uuid,
      command: 'RESERVE_ADD',
      indexes: [1],
    });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ error: { code: 'uuid_mismatch' } });
    expect(await count(ctx.db, 'allio_webhook')).toBe(before);
  });

  test('an inactive integration is answered 403 and stores nothing', async () => {
    const before = await count(ctx.db, 'allio_webhook');
    const res = await post(inactive.webhookKey, {
      uuid: inactive.uuid,
      command: 'RESERVE_ADD',
      indexes: [1],
    });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ error: { code: 'integration_inactive' } });
    expect(await count(ctx.db, 'allio_webhook')).toBe(before);
  });

  test.each([
    ['malformed JSON', 400, 'malformed_request', '{"uuid": '],
    [
      'a missing uuid',
      422,
      'invalid_webhook',
      { uuid: undefined, command: 'RESERVE_ADD', indexes: [1] },
    ],
    ['a lower-case command', 422, 'invalid_webhook', { command: 'reserve_add', indexes: [1] }],
    [
      'ids that are not numbers',
      422,
      'invalid_webhook',
      { command: 'RESERVE_ADD', indexes: ['abc'] },
    ],
    ['negative ids', 422, 'invalid_webhook', { command: 'RESERVE_ADD', indexes: [-5] }],
  ])('%s is answered %i with a reason and stores nothing', async (_name, status, code, payload) => {
    const before = await count(ctx.db, 'allio_webhook');
    const body = typeof payload === 'string' ? payload : { uuid: integration.uuid, ...payload };
    const res = await post(integration.webhookKey, body);
    expect(res.statusCode).toBe(status);
    const json = res.json() as { error: { code: string; message: string } };
    expect(json.error.code).toBe(code);
    expect(json.error.message.length).toBeGreaterThan(10);
    expect(await count(ctx.db, 'allio_webhook')).toBe(before);
  });

  test('an oversized body is refused with 413 and stores nothing', async () => {
    const before = await count(ctx.db, 'allio_webhook');
    const huge = {
      uuid: integration.uuid,
      command: 'RESERVE_ADD',
      indexes: Array.from({ length: 20_000 }, (_, i) => i + 1),
    };
    const res = await post(integration.webhookKey, huge);
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ error: { code: 'body_too_large' } });
    expect(await count(ctx.db, 'allio_webhook')).toBe(before);
  });

  test('a body that is not JSON is refused with 415 and stores nothing', async () => {
    const before = await count(ctx.db, 'allio_webhook');
    const res = await post(integration.webhookKey, 'uuid=x', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(res.statusCode).toBe(415);
    expect(await count(ctx.db, 'allio_webhook')).toBe(before);
  });

  test('a duplicate webhook is stored again (ALLIO sends no delivery id) and both are accepted', async () => {
    const payload = { uuid: integration.uuid, command: 'DEALCARD_MOD', indexes: [5] };
    const a = await post(integration.webhookKey, payload);
    const b = await post(integration.webhookKey, payload);
    expect([a.statusCode, b.statusCode]).toEqual([200, 200]);
    expect(await count(ctx.db, 'allio_webhook', { command: 'DEALCARD_MOD' })).toBe(2);
  });

  test('the webhook key, the only secret in the URL, never reaches a log line', async () => {
    const lines: string[] = [];
    const logger = createLogger(
      { level: 'info', name: 'api' },
      { write: (line: string) => void lines.push(line) },
    );
    const logged = buildApi({ db: ctx.db, logger, metrics: createMetrics(), readiness: [] });
    try {
      const url = await logged.listen({ port: 0, host: '127.0.0.1' });
      const r = await fetch(`${url}/webhooks/allio/${integration.webhookKey}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ uuid: integration.uuid, command: 'RESERVE_ADD', indexes: [9] }),
      });
      expect(r.status).toBe(200);
    } finally {
      await logged.close();
    }
    const text = lines.join('');
    expect(text).toContain('/webhooks/allio/[redacted]');
    expect(text).not.toContain(integration.webhookKey);
  });

  test('rejections are counted by reason in /metrics', async () => {
    const body = await (await fetch(`${base}/metrics`)).text();
    expect(body).toMatch(/hub_webhooks_received_total\{source="allio",result="uuid_mismatch"\} 1/);
    expect(body).toMatch(/hub_webhooks_received_total\{source="allio",result="accepted"\} \d+/);
  });
});

describe('allio webhook intake of hostile bodies', () => {
  let wide: FastifyInstance;
  let wideBase: string;
  beforeAll(async () => {
    // The production body limit (256 KiB), where the webhook test server above uses 64 KiB.
    wide = buildApi({ db: ctx.db, logger: ctx.logger, metrics: createMetrics(), readiness: [] });
    wideBase = await wide.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await wide.close();
  });
  const url = () => `${wideBase}/webhooks/allio/${integration.webhookKey}`;

  test.each([
    [
      '256 KiB of ids that are objects',
      () => invalidArrayBody({ uuid: integration.uuid, command: 'RESERVE_ADD' }, 'indexes', {}),
    ],
    [
      '9,999 ids that are not numbers (within the id limit)',
      () =>
        JSON.stringify({
          uuid: integration.uuid,
          command: 'RESERVE_ADD',
          indexes: Array.from({ length: 9_999 }, () => 'x'),
        }),
    ],
    [
      'a 200 KiB uuid',
      () => JSON.stringify({ uuid: 'u'.repeat(200 * 1024), command: 'RESERVE_ADD', indexes: [1] }),
    ],
  ])(
    '%s is answered 422 in a small answer of at most 20 issues and stores nothing',
    async (_name, body) => {
      const before = await count(ctx.db, 'allio_webhook');
      const res = await timedPost(url(), body());
      expect(res.status).toBe(422);
      expect(res.json?.error?.code).toBe('invalid_webhook');
      expect(res.bytes).toBeLessThan(MAX_ERROR_BYTES);
      expect(listedIssues(res)).toBeGreaterThan(0);
      expect(listedIssues(res)).toBeLessThanOrEqual(MAX_LISTED_ISSUES);
      expect(res.ms).toBeLessThan(2_000);
      expect(await count(ctx.db, 'allio_webhook')).toBe(before);
    },
  );

  test('JSON nested 100,000 deep is answered 4xx in a small answer and stores nothing', async () => {
    const before = await count(ctx.db, 'allio_webhook');
    const res = await timedPost(url(), `${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.bytes).toBeLessThan(MAX_ERROR_BYTES);
    expect(await count(ctx.db, 'allio_webhook')).toBe(before);
  });
});
