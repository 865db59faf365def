// The operator end to end against real PostgreSQL and RabbitMQ, and a Kubernetes API server in
// the test speaking list/watch/patch: resources become rows and queue bindings, status and
// finalizers are written back, deletion undoes them, and only the Lease holder acts.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import type { AmqpConnectionManager } from 'amqp-connection-manager';
import { parse as parseYaml } from 'yaml';
import { connectAmqp } from '../services/core/amqp.js';
import { Registry } from '../services/core/metrics.js';
import { COMMANDS_EXCHANGE } from '../services/contracts/smart-home-topology.js';
import { createOperator, type Operator } from '../services/operator/operator.js';
import { FINALIZER, type Condition, type ResourceStatus } from '../services/operator/reconcile.js';
import { INTEGRATION_LABEL } from '../services/operator/secrets.js';
import { hashWebhookKey } from '../services/domains/allio/webhook-key.js';
import { createVhost, type TestVhost } from './support/amqp.js';
import { createTestContext, waitFor, type TestContext } from './support/context.js';
import { startFakeKube, type FakeKube } from './support/fake-kube.js';
import { ROOT } from './support/tools.js';
import { testOutbound } from './support/partner-server.js';
import type { OutboundPolicy } from '../services/core/outbound.js';

const run = promisify(execFile);
const NS = 'hub';
const EXAMPLE_KEY = 'rN7xQ2vL9kT4mW8pZ3sY6bC1';

let ctx: TestContext;
let vhost: TestVhost;
let kube: FakeKube;
let amqp: AmqpConnectionManager;
const operators: Operator[] = [];

beforeAll(async () => {
  ctx = await createTestContext('operator');
  vhost = await createVhost('operator');
  kube = await startFakeKube();
  kube.putSecret(
    NS,
    'allio-residence-north',
    { 'webhook-key': `${EXAMPLE_KEY}\n`, token: 'allio-token' },
    { [INTEGRATION_LABEL]: 'residence-north' },
  );
  amqp = connectAmqp(vhost.url, ctx.logger, { name: 'operator test' });
});
afterEach(async () => {
  await Promise.all(operators.splice(0).map((o) => o.stop()));
});
afterAll(async () => {
  await amqp.close();
  await kube.close();
  await vhost.close();
  await ctx.close();
});

function startOperator(
  identity: string,
  o: { resyncMs?: number; leaseDurationSeconds?: number; outbound?: OutboundPolicy } = {},
): Operator {
  const op = createOperator({
    kc: kube.kubeConfig(),
    db: ctx.db,
    amqp,
    logger: ctx.logger,
    registry: new Registry(),
    identity,
    watchNamespace: NS,
    leaseNamespace: NS,
    leaseName: 'hub-operator',
    leaseDurationSeconds: o.leaseDurationSeconds ?? 5,
    resyncMs: o.resyncMs ?? 60_000,
    outbound: o.outbound,
  });
  operators.push(op);
  op.start();
  return op;
}

async function example(file: string) {
  const doc = parseYaml(await readFile(path.join(ROOT, 'crds/examples', file), 'utf8')) as {
    apiVersion: string;
    kind: string;
    metadata: { name: string; namespace?: string };
    spec: Record<string, unknown>;
  };
  return { ...doc, metadata: { ...doc.metadata, namespace: NS } };
}

/** The example's spec with an inline webhook key in place of its Secret reference. */
function inlineKey(spec: Record<string, unknown>, webhookKey: string): Record<string, unknown> {
  const { webhookKeySecretRef: _fromSecret, ...rest } = spec;
  return { ...rest, webhookKey };
}

const condition = (s: unknown, type: string): Condition | undefined =>
  ((s as ResourceStatus | undefined)?.conditions ?? []).find((c) => c.type === type);

/** Bindings of the commands exchange in the test's vhost, as routing key -> queue. */
async function commandBindings(): Promise<Record<string, string>> {
  const { stdout } = await run('rabbitmqctl', [
    'list_bindings',
    '-p',
    vhost.vhost,
    '-q',
    '--formatter',
    'json',
    'source_name',
    'destination_name',
    'routing_key',
  ]);
  const rows = JSON.parse(stdout) as {
    source_name: string;
    destination_name: string;
    routing_key: string;
  }[];
  return Object.fromEntries(
    rows
      .filter((r) => r.source_name === COMMANDS_EXCHANGE)
      .map((r) => [r.routing_key, r.destination_name]),
  );
}

describe('operator', () => {
  test('an AllioIntegration becomes an active row, gets our finalizer and a Ready status for its generation', async () => {
    const op = startOperator('op-a');
    await waitFor(() => op.elector.isLeader(), 10_000, 'leadership');
    kube.apply(await example('allio-integration.yaml'), 'alliointegrations');
    const row = await waitFor(
      () => ctx.db('allio_integrations').where({ name: 'residence-north' }).first(),
      10_000,
      'integration row',
    );
    expect(row).toEqual(
      expect.objectContaining({
        integration_uuid: '3f1e9a52-6c1d-4b8e-9f0a-2b7c5d4e6a10',
        api_token_secret_name: 'allio-residence-north',
        deletion_control: true,
        active: true,
        webhook_key_hash: hashWebhookKey(EXAMPLE_KEY),
      }),
    );
    expect(JSON.stringify(row)).not.toContain(EXAMPLE_KEY);
    expect(kube.requests).toContain('GET /api/v1/namespaces/hub/secrets/allio-residence-north');
    const o = await waitFor(
      () => {
        const x = kube.get('alliointegrations', NS, 'residence-north');
        return condition(x?.status, 'Ready')?.status === 'True' ? x : undefined;
      },
      10_000,
      'Ready status',
    );
    expect(o.metadata.finalizers).toEqual([FINALIZER]);
    expect(o.status).toEqual(expect.objectContaining({ observedGeneration: 1 }));
    expect(kube.requests).toContain(
      'PATCH /apis/integration-hub.io/v1alpha1/namespaces/hub/alliointegrations/residence-north/status',
    );

    // A spec change is a new generation; the row and the status follow it.
    const changed = await example('allio-integration.yaml');
    kube.apply(
      { ...changed, spec: { ...changed.spec, deletionControl: false } },
      'alliointegrations',
    );
    await waitFor(
      async () =>
        (await ctx.db('allio_integrations').where({ name: 'residence-north' }).first())
          ?.deletion_control === false,
      10_000,
      'updated row',
    );
    await waitFor(
      () =>
        (kube.get('alliointegrations', NS, 'residence-north')?.status as ResourceStatus | undefined)
          ?.observedGeneration === 2,
      10_000,
      'generation 2 status',
    );
  });

  test('an invalid resource is reported InvalidSpec and writes nothing', async () => {
    const op = startOperator('op-a');
    await waitFor(() => op.elector.isLeader(), 10_000, 'leadership');
    const bad = await example('allio-integration.yaml');
    kube.apply(
      {
        ...bad,
        metadata: { ...bad.metadata, name: 'broken' },
        spec: {
          ...bad.spec,
          integrationUuid: '0b6f3f0e-1d5c-4c8e-8d0a-1f6c5b4a3e21',
          apiToken: 'also-inline',
          apiTokenSecretRef: { name: 'allio-broken', key: 'token' },
        },
      },
      'alliointegrations',
    );
    const ready = await waitFor(
      () => condition(kube.get('alliointegrations', NS, 'broken')?.status, 'Ready'),
      10_000,
      'status',
    );
    expect(ready).toEqual(
      expect.objectContaining({
        status: 'False',
        reason: 'InvalidSpec',
        message: 'spec.apiToken set exactly one of apiToken or apiTokenSecretRef',
      }),
    );
    expect(await ctx.db('allio_integrations').where({ name: 'broken' }).first()).toBeUndefined();
  });

  test('a webhookKeySecretRef to a Secret not labelled for the integration is refused with Ready=False naming the label, and writes no row', async () => {
    const op = startOperator('op-a');
    await waitFor(() => op.elector.isLeader(), 10_000, 'leadership');
    // The Secret exists and is well-formed, but serves another integration (or none).
    kube.putSecret(NS, 'database', { password: 'Pg-password-1234567890' });
    const i = await example('allio-integration.yaml');
    kube.apply(
      {
        ...i,
        metadata: { ...i.metadata, name: 'prober' },
        spec: {
          ...i.spec,
          integrationUuid: '2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f',
          webhookKeySecretRef: { name: 'database', key: 'password' },
          apiTokenSecretRef: { name: 'allio-prober', key: 'token' },
        },
      },
      'alliointegrations',
    );
    const ready = await waitFor(
      () => condition(kube.get('alliointegrations', NS, 'prober')?.status, 'Ready'),
      10_000,
      'status',
    );
    expect(ready).toEqual(
      expect.objectContaining({
        status: 'False',
        reason: 'ApplyFailed',
        message: expect.stringContaining(`label it ${INTEGRATION_LABEL}=prober`),
      }),
    );
    expect(ready.message).not.toContain('Pg-password');
    expect(await ctx.db('allio_integrations').where({ name: 'prober' }).first()).toBeUndefined();
  });

  test('a rotated webhook key Secret replaces the stored hash at the next resync', async () => {
    const op = startOperator('op-a', { resyncMs: 300 });
    await waitFor(() => op.elector.isLeader(), 10_000, 'leadership');
    kube.putSecret(
      NS,
      'allio-rotating',
      { 'webhook-key': 'first-key-0123456789' },
      { [INTEGRATION_LABEL]: 'rotating' },
    );
    const i = await example('allio-integration.yaml');
    kube.apply(
      {
        ...i,
        metadata: { ...i.metadata, name: 'rotating' },
        spec: {
          ...i.spec,
          integrationUuid: '3d4e5f6a-7b8c-4d9e-8f0a-1b2c3d4e5f6a',
          webhookKeySecretRef: { name: 'allio-rotating', key: 'webhook-key' },
          apiTokenSecretRef: { name: 'allio-rotating', key: 'token' },
        },
      },
      'alliointegrations',
    );
    const hashOf = async () =>
      (await ctx.db('allio_integrations').where({ name: 'rotating' }).first())?.webhook_key_hash;
    await waitFor(
      async () => (await hashOf()) === hashWebhookKey('first-key-0123456789'),
      10_000,
      'first key',
    );
    kube.putSecret(
      NS,
      'allio-rotating',
      { 'webhook-key': 'second-key-0123456789' },
      { [INTEGRATION_LABEL]: 'rotating' },
    );
    await waitFor(
      async () => (await hashOf()) === hashWebhookKey('second-key-0123456789'),
      10_000,
      'rotated key',
    );
  });

  test("an integration whose apiTokenSecretRef names another integration's Secret is reported InvalidSpec naming its own and writes nothing", async () => {
    const op = startOperator('op-a');
    await waitFor(() => op.elector.isLeader(), 10_000, 'leadership');
    const i = await example('allio-integration.yaml');
    kube.apply(
      {
        ...i,
        metadata: { ...i.metadata, name: 'borrower' },
        spec: {
          ...inlineKey(i.spec, 'borrower-webhook-key-0001'),
          integrationUuid: '0b6f3f0e-1d5c-4c8e-8d0a-1f6c5b4a3e40',
          apiTokenSecretRef: { name: 'allio-residence-north', key: 'token' },
        },
      },
      'alliointegrations',
    );
    const ready = await waitFor(
      () => condition(kube.get('alliointegrations', NS, 'borrower')?.status, 'Ready'),
      10_000,
      'status',
    );
    expect(ready).toEqual(
      expect.objectContaining({
        status: 'False',
        reason: 'InvalidSpec',
        message:
          'spec.apiTokenSecretRef.name must be allio-borrower: an integration may only read the Secret bound to it by name',
      }),
    );
    expect(await ctx.db('allio_integrations').where({ name: 'borrower' }).first()).toBeUndefined();
  });

  test('an integration whose API URL the outbound policy refuses (http, or a host not allowed) is reported ApplyFailed with the reason and writes nothing', async () => {
    const op = startOperator('op-a', {
      outbound: testOutbound({
        OUTBOUND_ALLOW_HTTP: 'false',
        OUTBOUND_ALLOWED_HOSTS: '*.allio.example',
      }),
    });
    await waitFor(() => op.elector.isLeader(), 10_000, 'leadership');
    const i = await example('allio-integration.yaml');
    const cases = [
      { name: 'plain-http', apiBaseUrl: 'http://api.allio.example/v1', reason: /outbound_scheme/ },
      {
        name: 'in-cluster',
        apiBaseUrl: 'https://postgres.hub.svc.cluster.local/v1',
        reason:
          /outbound_host: allio: host postgres\.hub\.svc\.cluster\.local is not in OUTBOUND_ALLOWED_HOSTS/,
      },
    ];
    for (const [n, c] of cases.entries()) {
      kube.apply(
        {
          ...i,
          metadata: { ...i.metadata, name: c.name },
          spec: {
            ...inlineKey(i.spec, `refused-url-key-00000${n}`),
            apiBaseUrl: c.apiBaseUrl,
            integrationUuid: `0b6f3f0e-1d5c-4c8e-8d0a-1f6c5b4a3e3${n}`,
            apiTokenSecretRef: { name: `allio-${c.name}`, key: 'token' },
          },
        },
        'alliointegrations',
      );
    }
    for (const c of cases) {
      const ready = await waitFor(
        () => condition(kube.get('alliointegrations', NS, c.name)?.status, 'Ready'),
        10_000,
        `status of ${c.name}`,
      );
      expect(ready).toEqual(
        expect.objectContaining({
          status: 'False',
          reason: 'ApplyFailed',
          message: expect.stringMatching(c.reason),
        }),
      );
      expect(await ctx.db('allio_integrations').where({ name: c.name }).first()).toBeUndefined();
    }
  });

  test('a SmartHomePartner gets its quorum queue bound under its name, a row, and says its OAuth client is not managed', async () => {
    const op = startOperator('op-a');
    await waitFor(() => op.elector.isLeader(), 10_000, 'leadership');
    kube.apply(await example('smart-home-partner.yaml'), 'smarthomepartners');
    await waitFor(
      async () => (await commandBindings())['domofon-plus'] === 'partner.domofon-plus.commands',
      10_000,
      'binding',
    );
    const row = await waitFor(
      () => ctx.db('smart_home_partners').where({ name: 'domofon-plus' }).first(),
      10_000,
      'partner row',
    );
    expect(row).toEqual(
      expect.objectContaining({
        services: ['intercom', 'barrier'],
        command_queue: 'partner.domofon-plus.commands',
        active: true,
      }),
    );
    const status = await waitFor(
      () => {
        const s = kube.get('smarthomepartners', NS, 'domofon-plus')?.status as
          ResourceStatus | undefined;
        return condition(s, 'Ready')?.status === 'True' ? s : undefined;
      },
      10_000,
      'Ready status',
    );
    expect(status.commandQueue).toBe('partner.domofon-plus.commands');
    expect(condition(status, 'TopologyReady')).toEqual(
      expect.objectContaining({ status: 'True', reason: 'Bound' }),
    );
    expect(condition(status, 'OAuthClientReady')).toEqual(
      expect.objectContaining({ status: 'Unknown', reason: 'NotManaged' }),
    );
  });

  test('deleting a partner unbinds its queue, deactivates its row, then releases the finalizer so it goes', async () => {
    const op = startOperator('op-a');
    await waitFor(() => op.elector.isLeader(), 10_000, 'leadership');
    const p = await example('smart-home-partner.yaml');
    kube.apply(
      { ...p, metadata: { ...p.metadata, name: 'barrier-pro' }, spec: { services: ['barrier'] } },
      'smarthomepartners',
    );
    await waitFor(
      async () => (await commandBindings())['barrier-pro'] === 'partner.barrier-pro.commands',
      10_000,
      'binding',
    );
    await waitFor(
      () =>
        kube.get('smarthomepartners', NS, 'barrier-pro')?.metadata.finalizers?.includes(FINALIZER),
      10_000,
      'finalizer',
    );

    kube.remove('smarthomepartners', NS, 'barrier-pro');
    await waitFor(
      () => kube.get('smarthomepartners', NS, 'barrier-pro') === undefined,
      10_000,
      'object gone',
    );
    expect((await commandBindings())['barrier-pro']).toBeUndefined();
    expect(await ctx.db('smart_home_partners').where({ name: 'barrier-pro' }).first()).toEqual(
      expect.objectContaining({ active: false }),
    );
  });

  test('a queue removed by hand is bound again at the next resync', async () => {
    const op = startOperator('op-a', { resyncMs: 300 });
    await waitFor(() => op.elector.isLeader(), 10_000, 'leadership');
    const p = await example('smart-home-partner.yaml');
    kube.apply(
      {
        ...p,
        metadata: { ...p.metadata, name: 'gate-one' },
        spec: { services: ['barrier'], commandQueue: 'gate-one.q' },
      },
      'smarthomepartners',
    );
    await waitFor(
      async () => (await commandBindings())['gate-one'] === 'gate-one.q',
      10_000,
      'binding',
    );
    // rabbitmqctl returns once the queue (and so its binding) is gone; it fails otherwise.
    await run('rabbitmqctl', ['delete_queue', '-p', vhost.vhost, 'gate-one.q']);
    await waitFor(
      async () => (await commandBindings())['gate-one'] === 'gate-one.q',
      10_000,
      'binding restored',
    );
  });

  test('only the Lease holder reconciles; when it stops, a standby takes over and picks up new resources', async () => {
    const a = startOperator('op-a', { leaseDurationSeconds: 6 });
    await waitFor(() => a.elector.isLeader(), 10_000, 'a leads');
    const transitions = Number(
      (kube.get('leases', NS, 'hub-operator')?.spec as { leaseTransitions?: number })
        .leaseTransitions ?? 0,
    );
    const b = startOperator('op-b', { leaseDurationSeconds: 6 });
    // b has read the Lease (held by a) at least once and stayed a standby.
    await waitFor(
      () =>
        kube.requests.filter((r) =>
          r.startsWith('GET /apis/coordination.k8s.io/v1/namespaces/hub/leases/hub-operator'),
        ).length >= 3,
      10_000,
      'b campaigning',
    );
    expect(b.elector.isLeader()).toBe(false);
    expect(kube.get('leases', NS, 'hub-operator')?.spec).toEqual(
      expect.objectContaining({ holderIdentity: 'op-a' }),
    );

    await a.stop();
    await waitFor(() => b.elector.isLeader(), 10_000, 'b takes over');
    expect(kube.get('leases', NS, 'hub-operator')?.spec).toEqual(
      expect.objectContaining({ holderIdentity: 'op-b', leaseTransitions: transitions + 1 }),
    );
    const i = await example('allio-integration.yaml');
    kube.apply(
      {
        ...i,
        metadata: { ...i.metadata, name: 'after-failover' },
        spec: {
          ...inlineKey(i.spec, 'after-failover-key-0001'),
          integrationUuid: '5d2c1b0a-9e8f-4a7b-8c6d-5e4f3a2b1c0d',
          apiTokenSecretRef: { name: 'allio-after-failover', key: 'token' },
        },
      },
      'alliointegrations',
    );
    await waitFor(
      () => ctx.db('allio_integrations').where({ name: 'after-failover' }).first(),
      10_000,
      'row written by b',
    );
  });

  test('a dropped watch is re-established and later changes still arrive', async () => {
    const op = startOperator('op-a');
    await waitFor(() => op.elector.isLeader(), 10_000, 'leadership');
    await waitFor(
      () => kube.requests.filter((r) => r.endsWith('/alliointegrations?watch')).length > 0,
      10_000,
      'watching',
    );
    const watchesBefore = kube.requests.filter((r) =>
      r.endsWith('/alliointegrations?watch'),
    ).length;
    kube.dropWatches();
    await waitFor(
      () =>
        kube.requests.filter((r) => r.endsWith('/alliointegrations?watch')).length > watchesBefore,
      15_000,
      'watch again',
    );
    const i = await example('allio-integration.yaml');
    kube.apply(
      {
        ...i,
        metadata: { ...i.metadata, name: 'after-drop' },
        spec: {
          ...inlineKey(i.spec, 'after-drop-key-00000001'),
          integrationUuid: '7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d',
          apiTokenSecretRef: { name: 'allio-after-drop', key: 'token' },
        },
      },
      'alliointegrations',
    );
    await waitFor(
      () => ctx.db('allio_integrations').where({ name: 'after-drop' }).first(),
      10_000,
      'row after the watch came back',
    );
  });
});
