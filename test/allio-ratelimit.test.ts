// ALLIO's quota as ALLIO counts it (no third request in any rolling second, per source IP) on the
// real Redis limiter and the ALLIO simulator: when a worker is paused between its slot and its
// send, and when the network delays requests by different amounts on their way to ALLIO.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { startAllioSimulator, type AllioSimulator } from '../services/simulators/allio/server.js';
import { AllioClient, allioLimit } from '../services/domains/allio/client.js';
import { createMetrics } from '../services/core/metrics.js';
import { OutboundPolicy } from '../services/core/outbound.js';
import { RateLimiter } from '../services/core/ratelimit/limiter.js';
import { createTestContext, type TestContext } from './support/context.js';
import { allioTestConfig } from './support/allio.js';
import { startTcpGate } from './support/tcp-gate.js';
import { createRng } from './chaos/rng.js';

let ctx: TestContext;
let sim: AllioSimulator;

beforeAll(async () => {
  ctx = await createTestContext('allio-rl');
  sim = await startAllioSimulator({ token: 'test-token' });
});
afterAll(async () => {
  await sim.close();
  await ctx.close();
});

/** A limiter whose caller is paused right after every other slot it gets, as a stopped or starved process is. */
class PausedAfterGrant extends RateLimiter {
  grants = 0;

  constructor(private readonly pauseMs: number) {
    super(ctx.redis, ctx.keyPrefix, createMetrics(), ctx.logger);
  }

  override async acquire(
    ...args: Parameters<RateLimiter['acquire']>
  ): ReturnType<RateLimiter['acquire']> {
    const grant = await super.acquire(...args);
    if (this.grants++ % 2 === 0) await new Promise((resolve) => setTimeout(resolve, this.pauseMs));
    return grant;
  }
}

function client(limiter: RateLimiter): AllioClient {
  const config = allioTestConfig(ctx);
  const metrics = createMetrics();
  return new AllioClient({
    limiter,
    limit: allioLimit(config),
    egressIp: config.EGRESS_IP,
    timeoutMs: config.ALLIO_HTTP_TIMEOUT_MS,
    metrics,
    outbound: new OutboundPolicy(config, ctx.logger, metrics),
  });
}

describe('ALLIO rate limit at ALLIO', () => {
  test('requests delayed on their way to ALLIO by up to 400 ms, differently per connection, never make a third request in a second at ALLIO', async () => {
    sim.reset();
    // Every chunk either way held 0..400 ms, order kept within a connection; seeded, to replay a failure.
    const rng = createRng(20261201);
    const { hostname, port } = new URL(sim.url);
    const proxy = await startTcpGate(
      { host: hostname, port: Number(port) },
      { chunkDelayMs: () => rng.next() * 400 },
    );
    try {
      const workers = Array.from({ length: 3 }, () =>
        client(new RateLimiter(ctx.redis, ctx.keyPrefix, createMetrics(), ctx.logger)),
      );
      const refused: unknown[] = [];
      await Promise.all(
        workers.map(async (w, i) => {
          for (let n = 0; n < 5; n++) {
            await w
              .list(`http://${proxy.address}`, 'test-token', 'reserve', {
                ids: [2_000 + i * 10 + n],
              })
              .catch((e: unknown) => refused.push(e));
          }
        }),
      );
      for (const w of workers) w.close();
      const stats = sim.stats();
      expect({
        refused: refused.length,
        violations: stats.violations,
        maxInWindow: stats.maxInWindow,
        served: stats.served,
      }).toEqual({ refused: 0, violations: 0, maxInWindow: 2, served: 15 });
    } finally {
      await proxy.close();
    }
  }, 30_000);

  test('a worker paused right after it got its slot and resumed later never makes a third request in a second at ALLIO', async () => {
    sim.reset();
    const paused = new PausedAfterGrant(700);
    const workers = [
      client(paused),
      client(new RateLimiter(ctx.redis, ctx.keyPrefix, createMetrics(), ctx.logger)),
      client(new RateLimiter(ctx.redis, ctx.keyPrefix, createMetrics(), ctx.logger)),
    ];
    const refused: unknown[] = [];
    await Promise.all(
      workers.map(async (w, i) => {
        for (let n = 0; n < 4; n++) {
          await w
            .list(sim.url, 'test-token', 'reserve', { ids: [1_000 + i * 10 + n] })
            .catch((e: unknown) => refused.push(e));
        }
      }),
    );
    expect(paused.grants).toBeGreaterThanOrEqual(4);
    const stats = sim.stats();
    expect(refused).toEqual([]);
    expect(stats.violations).toBe(0);
    expect(stats.maxInWindow).toBeLessThanOrEqual(2);
    expect(stats.served).toBe(12);
  });
});
