// First start on an empty RabbitMQ node: the api (with the kitchen) and the mq-bridge declare their
// quorum queues and consume them without a channel error or a stack trace in their output.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import {
  createTestContext,
  DATABASE_URL,
  REDIS_URL,
  waitFor,
  type TestContext,
} from './support/context.js';
import { expectCleanExit, startServiceProcess, type ServiceProcess } from './support/process.js';
import { startRabbitNode, type RabbitNode } from './support/rabbitmq-node.js';

let ctx: TestContext;
let node: RabbitNode;
beforeAll(async () => {
  ctx = await createTestContext('freshmq');
  node = await startRabbitNode();
}, 90_000);
afterAll(async () => {
  await node?.stop();
  await ctx?.close();
}, 30_000);

/** Consumers per queue on the node, from rabbitmqctl. */
async function consumers(): Promise<Map<string, number>> {
  const out = await node.rabbitmqctl(
    'list_queues',
    '--quiet',
    '--no-table-headers',
    'name',
    'consumers',
  );
  const found = new Map<string, number>();
  for (const line of out.split('\n')) {
    const [name, n] = line.trim().split(/\s+/);
    if (name && n) found.set(name, Number(n));
  }
  return found;
}

/** Lines that show a channel crash or an unhandled error (541 as a reply code, not a timestamp's "…:38.541Z"). */
const TROUBLE = /\b541 |"code":541|INTERNAL_ERROR|\n\s+at .+:\d+:\d+\)?|"stack":/;

/** The api with the kitchen and the mq-bridge, as processes against the node. */
function startServices(): ServiceProcess[] {
  const env = {
    DATABASE_URL,
    DATABASE_SCHEMA: ctx.schema,
    REDIS_URL,
    REDIS_KEY_PREFIX: ctx.keyPrefix,
    AMQP_URL: node.amqpUrl,
    PORT: '0',
    LOG_LEVEL: 'info',
    TENANT_JWT_ISSUER: 'http://127.0.0.1:9/',
    TENANT_JWKS_URL: 'http://127.0.0.1:9/jwks',
    TENANT_JWT_AUDIENCE: 'hub',
    DATA_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
  };
  return [
    startServiceProcess('services/api/main.ts', {
      ...env,
      KITCHEN_API: 'true',
      KITCHEN_WAREHOUSE_WEBHOOK_SECRETS: `whsec_${randomBytes(24).toString('base64')}`,
    }),
    startServiceProcess('services/mq-bridge/main.ts', env),
  ];
}

const CONSUMED = ['kitchen.order-status', 'smart-home.replies'];

async function allConsumed(): Promise<boolean> {
  const c = await consumers();
  return CONSUMED.every((q) => (c.get(q) ?? 0) >= 1);
}

function expectNoTrouble(processes: ServiceProcess[]): void {
  for (const p of processes) {
    const trouble = TROUBLE.exec(p.output());
    if (trouble) console.log(`${p.entry}:\n${p.output()}`);
    expect(trouble?.[0]).toBeUndefined();
  }
}

async function stopAll(processes: ServiceProcess[]): Promise<void> {
  for (const p of processes) p.child.kill('SIGTERM');
  for (const p of processes) await expectCleanExit(p);
}

/** Runs an Erlang expression on the node for each consumed queue's quorum member (Ra server). */
async function eachMember(fn: 'stop_server' | 'restart_server'): Promise<void> {
  for (const q of CONSUMED) {
    await node.rabbitmqctl('eval', `ra:${fn}(quorum_queues, {'%2F_${q}', node()}).`);
  }
}

test('api with the kitchen and mq-bridge start on a brand-new RabbitMQ node: no channel error, no stack trace, every queue consumed', async () => {
  const processes = startServices();
  try {
    await waitFor(allConsumed, 40_000, 'both queues consumed');
    // Whatever went wrong at the first consume shows within a second or two of it.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expectNoTrouble(processes);
    expect(node.logs()).not.toMatch(/INTERNAL_ERROR/);
  } finally {
    await stopAll(processes);
  }
}, 120_000);

test('a consume the broker refuses right after the declaration (its quorum replica not running yet) is retried with one line per queue and no stack trace', async () => {
  // What a fresh node does to a second declarer while the queue's replica is still starting.
  await eachMember('stop_server');
  let processes: ServiceProcess[] = [];
  try {
    processes = startServices();
    const refusal = /rabbitmq refused a consumer: the queue is not ready yet/;
    // Each refused consume is a crash report in the broker's log; several retries meet the refusal.
    const refusals = () => node.logs().match(/\{'basic\.consume',/g)?.length ?? 0;
    const before = refusals();
    await waitFor(() => refusals() >= before + 4, 60_000, 'the broker to refuse consumes');
    await eachMember('restart_server');
    await waitFor(allConsumed, 30_000, 'both queues consumed');
    expectNoTrouble(processes);
    for (const p of processes) {
      expect(
        p
          .output()
          .split('\n')
          .filter((l) => refusal.test(l)),
      ).toHaveLength(1);
    }
  } finally {
    await eachMember('restart_server').catch(() => undefined);
    await stopAll(processes);
  }
}, 120_000);
