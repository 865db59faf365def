// The shared HTTP scaffold keeps every error answer small, whatever a route put in its error or a
// client put in its URL or body.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { MAX_ISSUES } from './bounds.js';
import { ApiError, createHttpServer } from './http.js';
import { createMetrics } from './metrics.js';

let app: FastifyInstance;
let base: string;

/** Real HTTP against the listening server. */
async function send(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
) {
  const res = await fetch(`${base}${path}`, { method, headers, body });
  const text = await res.text();
  return { statusCode: res.status, body: text, json: () => JSON.parse(text) as unknown };
}

beforeAll(async () => {
  app = createHttpServer({
    logger: pino({ level: 'silent' }),
    metrics: createMetrics(),
    readiness: [],
  });
  app.post('/huge-details', async () => {
    throw new ApiError(
      422,
      'invalid_body',
      'm'.repeat(10_000),
      Array.from({ length: 5_000 }, (_, i) => ({ path: `items.${i}`, message: 'x'.repeat(300) })),
    );
  });
  app.post('/echo', async (req) => ({ ok: true, body: req.body }));
  app.post('/param/:key', async () => ({ ok: true }));
  base = await app.listen({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  await app.close();
});

describe('error answers of the HTTP scaffold', () => {
  test('an ApiError with thousands of details and a long message is answered in under 8 KiB', async () => {
    const res = await send('POST', '/huge-details', { 'content-type': 'application/json' }, '{}');
    expect(res.statusCode).toBe(422);
    expect(res.body.length).toBeLessThan(8 * 1024);
    const { error } = res.json() as { error: { message: string; details: unknown } };
    expect(error.message.length).toBeLessThanOrEqual(500);
    expect(Array.isArray(error.details) ? error.details.length : 0).toBeLessThanOrEqual(MAX_ISSUES);
  });

  test('a 404 for a 10 KiB path and a 415 for a 10 KiB content type are answered small', async () => {
    const notFound = await send('GET', `/${'a'.repeat(10_240)}`);
    expect(notFound.statusCode).toBe(404);
    expect(notFound.body.length).toBeLessThan(1_024);
    const media = await send(
      'POST',
      '/echo',
      { 'content-type': `application/${'x'.repeat(10_240)}` },
      'a',
    );
    expect(media.statusCode).toBe(415);
    expect(media.body.length).toBeLessThan(1_024);
  });

  test('JSON nested 64 levels is accepted, 65 levels is refused with 400 body_too_deep; prototype poisoning is still refused', async () => {
    const json = { 'content-type': 'application/json' };
    const nest = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    expect((await send('POST', '/echo', json, nest(64))).statusCode).toBe(200);
    const deep = await send('POST', '/echo', json, nest(65));
    expect(deep.statusCode).toBe(400);
    expect(deep.json()).toMatchObject({ error: { code: 'body_too_deep' } });
    const poisoned = await send('POST', '/echo', json, '{"__proto__":{"x":1}}');
    expect(poisoned.statusCode).toBe(400);
    const empty = await send('POST', '/echo', json, '');
    expect(empty.statusCode).toBe(400);
  });

  test('a NUL in any string or key of a JSON body is refused with 400 nul_character; an escaped backslash before u0000 is not a NUL', async () => {
    const json = { 'content-type': 'application/json' };
    for (const body of ['{"a":"x\\u0000y"}', '{"a\\u0000":1}', '[[{"b":["\\u0000"]}]]']) {
      const res = await send('POST', '/echo', json, body);
      expect({
        body,
        status: res.statusCode,
        code: (res.json() as { error?: { code?: string } }).error?.code,
      }).toEqual({ body, status: 400, code: 'nul_character' });
    }
    expect((await send('POST', '/echo', json, '{"a":"\\\\u0000"}')).statusCode).toBe(200);
  });

  test('a path that is not valid percent-encoding is answered 400 malformed_url in a small answer, not echoed', async () => {
    for (const path of [
      '/param/%zz' + 'x'.repeat(12_000),
      '/param/%E0%A4%A',
      '/%C0%AF' + 'y'.repeat(12_000),
    ]) {
      const res = await send('POST', path);
      expect({
        status: res.statusCode,
        code: (res.json() as { error?: { code?: string } }).error?.code,
      }).toEqual({ status: 400, code: 'malformed_url' });
      expect(res.body.length).toBeLessThan(1_024);
    }
  });
});
