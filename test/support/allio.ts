// Helpers for ALLIO tests: an integration row, a running allio-sync instance, CRM counts.
import { randomUUID } from 'node:crypto';
import { allioEnv, loadConfig } from '../../services/core/config.js';
import type { Db } from '../../services/core/db.js';
import { upsertIntegration } from '../../services/domains/allio/integrations.js';
import { API_VERSION, allioIntegrationResource } from '../../services/domains/allio/resource.js';
import {
  createAllioSync,
  type AllioSync,
  type AllioSyncDeps,
} from '../../services/allio-sync/service.js';
import { createMetrics } from '../../services/core/metrics.js';
import type { TestContext } from './context.js';
import { track } from './leaks.js';

export interface TestIntegration {
  id: string;
  name: string;
  uuid: string;
  webhookKey: string;
}

export async function addIntegration(
  db: Db,
  o: {
    baseUrl: string;
    token?: string;
    deletionControl?: boolean;
    active?: boolean;
    name?: string;
    webhookKey?: string;
  },
): Promise<TestIntegration> {
  const name = o.name ?? `it-${randomUUID().slice(0, 8)}`;
  const uuid = randomUUID();
  const webhookKey = o.webhookKey ?? `wh_${randomUUID().replace(/-/g, '')}`;
  const resource = allioIntegrationResource.parse({
    apiVersion: API_VERSION,
    kind: 'AllioIntegration',
    metadata: { name },
    spec: {
      integrationUuid: uuid,
      webhookKey,
      apiBaseUrl: o.baseUrl,
      apiToken: o.token ?? 'test-token',
      deletionControl: o.deletionControl ?? false,
      active: o.active ?? true,
    },
  });
  const { id } = await upsertIntegration(db, resource);
  return { id, name, uuid, webhookKey };
}

export function allioTestConfig(ctx: TestContext, overrides: Record<string, string> = {}) {
  return {
    // The simulators speak plain HTTP on 127.0.0.1: the development switch allows it.
    ...loadConfig(allioEnv, {
      ALLIO_HTTP_TIMEOUT_MS: '2000',
      ALLIO_MAX_ATTEMPTS: '5',
      OUTBOUND_ALLOW_HTTP: 'true',
      ...overrides,
    }),
    REDIS_KEY_PREFIX: ctx.keyPrefix,
  };
}

/** Starts an allio-sync instance as one replica would run it; stop() untracks it. */
export async function startSync(
  ctx: TestContext,
  o: Partial<AllioSyncDeps> & { env?: Record<string, string>; db?: Db } = {},
): Promise<AllioSync> {
  const sync = createAllioSync({
    db: o.db ?? ctx.db,
    redis: o.redis ?? ctx.redis,
    config: o.config ?? allioTestConfig(ctx, o.env),
    logger: ctx.logger,
    metrics: o.metrics ?? createMetrics(),
    owner: o.owner ?? `test-${randomUUID().slice(0, 6)}`,
    pollMaxMs: o.pollMaxMs ?? 200,
    listener: o.listener,
    now: o.now,
    schedulerIntervalMs: o.schedulerIntervalMs,
  });
  const untrack = track('allio-sync instance');
  await sync.start();
  const stop = sync.stop.bind(sync);
  sync.stop = async (timeoutMs?: number) => {
    await stop(timeoutMs);
    untrack();
  };
  return sync;
}

export async function count(
  db: Db,
  table: string,
  where: Record<string, unknown> = {},
): Promise<number> {
  const row = await db(table).where(where).count<{ count: string }[]>('* as count').first();
  return Number(row?.count ?? 0);
}
