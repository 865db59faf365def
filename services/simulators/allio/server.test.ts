// Integration tests for the ALLIO simulator over real HTTP, plus determinism checks of its data.
import http from 'node:http';
import { afterEach, describe, expect, it } from '@jest/globals';
import { makeDealCard, makeReservation, idsForDate } from './data.js';
import { startAllioSimulator, type AllioSimulator, type AllioSimulatorOptions } from './server.js';

const TOKEN = 'test-token';
let sim: AllioSimulator | undefined;

afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

async function start(opts: Partial<AllioSimulatorOptions> = {}): Promise<AllioSimulator> {
  sim = await startAllioSimulator({ token: TOKEN, ...opts });
  return sim;
}

function post(s: AllioSimulator, path: string, body: unknown, token = TOKEN): Promise<Response> {
  return fetch(`${s.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A list request sent from `localAddress` (any of 127.0.0.0/8 on Linux); resolves with the status. */
function postFrom(s: AllioSimulator, localAddress: string, ids: number[]): Promise<number> {
  const url = new URL(`${s.url}/reserve/list`);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        localAddress,
        agent: false,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.once('error', reject);
    req.end(JSON.stringify({ ids }));
  });
}

describe('ALLIO simulator server', () => {
  it('returns one record per distinct requested id', async () => {
    const s = await start();
    const res = await post(s, '/reserve/list', { ids: [3, 1, 3, 2] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { items: { id: number }[] };
    expect(body.items.map((r) => r.id).sort()).toEqual([1, 2, 3]);
    expect(body.items.find((r) => r.id === 2)).toEqual(makeReservation(2));

    const deals = (await (await post(s, '/dealcard/list', { ids: [5] })).json()) as {
      items: unknown[];
    };
    expect(deals.items).toEqual([makeDealCard(5)]);

    const st = s.stats();
    expect(st).toMatchObject({
      requests: 2,
      served: 2,
      recordsServed: 4,
      idsRequested: 5,
      violations: 0,
    });
  });

  it('answers a date query with 20 deterministic records', async () => {
    const s = await start();
    const res = await post(s, '/reserve/list', { date: '2025-03-14' });
    const body = (await res.json()) as { items: { id: number }[] };
    expect(res.status).toBe(200);
    expect(body.items.map((r) => r.id)).toEqual(idsForDate('2025-03-14'));
    expect(body.items).toHaveLength(20);
    expect((await post(s, '/reserve/list', { date: '2025-02-30' })).status).toBe(400);
  });

  it('rejects a bad token with 401', async () => {
    const s = await start();
    const res = await post(s, '/reserve/list', { ids: [1] }, 'wrong');
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      error: { code: 'unauthorized', message: expect.any(String) },
    });
  });

  it('rejects more than 100 ids with 400', async () => {
    const s = await start();
    const ids = Array.from({ length: 101 }, (_, i) => i + 1);
    const res = await post(s, '/dealcard/list', { ids });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('too_many_ids');
  });

  it('rejects malformed JSON with 400', async () => {
    const s = await start();
    const res = await post(s, '/reserve/list', '{"ids": [1,');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_json');
  });

  it('answers the third request in quick succession with 429 and Retry-After', async () => {
    const s = await start();
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 3; i++) {
      const res = await post(s, '/reserve/list', { ids: [i + 1] });
      statuses.push(res.status);
      if (res.status === 429) retryAfter = res.headers.get('retry-after');
      await res.arrayBuffer();
    }
    expect(statuses).toEqual([200, 200, 429]);
    expect(retryAfter).toBe('1');
    const st = s.stats();
    expect(st.violations).toBe(1);
    expect(st.maxInWindow).toBe(2);
    expect(st.byIp['127.0.0.1']).toEqual({ requests: 3, violations: 1 });
  });

  it('counts requests that fail auth against the quota', async () => {
    const s = await start();
    expect((await post(s, '/reserve/list', { ids: [1] }, 'wrong')).status).toBe(401);
    expect((await post(s, '/reserve/list', { ids: [1] }, 'wrong')).status).toBe(401);
    expect((await post(s, '/reserve/list', { ids: [1] })).status).toBe(429);
  });

  it('never flags requests spaced by 510 ms', async () => {
    const s = await start();
    for (let i = 0; i < 4; i++) {
      if (i > 0) await sleep(510);
      const res = await post(s, '/reserve/list', { ids: [i + 1] });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    expect(s.stats()).toMatchObject({ requests: 4, served: 4, violations: 0 });
  });

  it('counts each caller address under its own quota, or all of them as one egress with oneEgress', async () => {
    const perCaller = await start();
    const a = [
      await postFrom(perCaller, '127.0.0.1', [1]),
      await postFrom(perCaller, '127.0.0.1', [2]),
      await postFrom(perCaller, '127.0.0.2', [3]),
    ];
    expect(a).toEqual([200, 200, 200]);
    await perCaller.close();

    const shared = await start({ oneEgress: true });
    const b = [
      await postFrom(shared, '127.0.0.1', [1]),
      await postFrom(shared, '127.0.0.1', [2]),
      await postFrom(shared, '127.0.0.2', [3]),
    ];
    expect(b).toEqual([200, 200, 429]);
    expect(shared.stats()).toMatchObject({ requests: 3, violations: 1, maxInWindow: 2 });
    expect(shared.stats().byIp).toEqual({
      '127.0.0.1': { requests: 2, violations: 0 },
      '127.0.0.2': { requests: 1, violations: 1 },
    });
  });

  it('does not return missing ids', async () => {
    const s = await start({ missingIds: [2, 4] });
    const res = await post(s, '/reserve/list', { ids: [1, 2, 3, 4] });
    const body = (await res.json()) as { items: { id: number }[] };
    expect(body.items.map((r) => r.id).sort()).toEqual([1, 3]);
  });

  it('failNext(1, 503) fails exactly one request', async () => {
    const s = await start({ ratePerSecond: 10 });
    s.failNext(1, 503, 2);
    const first = await post(s, '/reserve/list', { ids: [1] });
    expect(first.status).toBe(503);
    expect(first.headers.get('retry-after')).toBe('2');
    await first.arrayBuffer();
    expect((await post(s, '/reserve/list', { ids: [1] })).status).toBe(200);
  });

  it('serves stats without auth or quota, and reset clears them', async () => {
    const s = await start();
    await (await post(s, '/reserve/list', { ids: [1] })).arrayBuffer();
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${s.url}/_sim/stats`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { requests: number }).requests).toBe(1);
    }
    s.reset();
    expect(s.stats()).toEqual({
      requests: 0,
      served: 0,
      violations: 0,
      recordsServed: 0,
      idsRequested: 0,
      maxInWindow: 0,
      byIp: {},
    });
  });

  it('closes cleanly while a delayed response is pending', async () => {
    const s = await start({ latencyMs: 5000 });
    const pending = post(s, '/reserve/list', { ids: [1] }).then(
      (r) => r.status,
      () => 'aborted',
    );
    await sleep(50);
    await s.close();
    expect(await pending).toBe('aborted');
  });
});

describe('ALLIO simulator data', () => {
  it('is deterministic per id', () => {
    expect(makeReservation(42)).toEqual(makeReservation(42));
    expect(makeDealCard(42)).toEqual(makeDealCard(42));
    expect(makeReservation(42)).not.toEqual(makeReservation(43));
  });

  it('produces broken phones on schedule', () => {
    expect(makeReservation(7).client.phone).toBe('#ERROR!');
    expect(makeDealCard(7).buyer.phone).toBe('#ERROR!');
    expect(makeReservation(11).client.phone).toBe('');
    expect(makeReservation(1).client.phone).toMatch(/^\+7 \(9\d\d\) \d{3}-\d\d-\d\d$/);
  });

  it('shares contacts between records and keeps fields well-formed', () => {
    const a = makeReservation(5);
    const b = makeReservation(5 + 997);
    expect(a.client.id).toBe(b.client.id);
    expect({ ...a.client, phone: '' }).toEqual({ ...b.client, phone: '' });
    expect(a.till).toMatch(/^2025-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(['ACTIVE', 'EXPIRED', 'CANCELLED']).toContain(a.status);
    expect(['PREPAID', 'FREE', 'PAID']).toContain(a.type);
    const d = makeDealCard(5);
    expect(typeof d.sum).toBe('number');
    expect(d.contract_number).toContain('000005');
  });
});
