// What is outside the chart: the dev overlay renders with kubectl kustomize and wires the chart's
// dev connection strings to real Services, skaffold.yaml points at files and values that exist,
// and the RabbitMQ definitions declare exactly the topology the code declares.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { ConfirmChannel } from 'amqplib';
import { parse as parseYaml } from 'yaml';
import { connectAmqp } from '../../services/core/amqp.js';
import { assertBaseTopology } from '../../services/mq-bridge/topology.js';
import { createVhost, type TestVhost } from '../support/amqp.js';
import { parseYamlDocs, validateKubeObject, type KubeObject } from '../support/kube-schemas.js';
import { helm, kubectl, mustRun, ROOT } from '../support/tools.js';
import { pino } from 'pino';

const exec = promisify(execFile);

describe('dev overlay', () => {
  let objects: KubeObject[];
  beforeAll(async () => {
    objects = parseYamlDocs(await mustRun(await kubectl(), ['kustomize', path.join(ROOT, 'k8s/dev')]));
  }, 60_000);

  test('kubectl kustomize renders valid objects, all in the dev namespace', async () => {
    for (const o of objects) await validateKubeObject(o);
    expect(objects.filter((o) => o.kind !== 'Namespace').every((o) => o.metadata.namespace === 'integration-hub-dev')).toBe(true);
  });

  test('RabbitMQ mounts the generated definitions and config, and every Service selects a workload', () => {
    const configMaps = new Set(objects.filter((o) => o.kind === 'ConfigMap').map((o) => o.metadata.name));
    type Workload = KubeObject & { spec: { template: { metadata: { labels: Record<string, string> }; spec: { volumes?: { configMap?: { name: string } }[] } } } };
    const workloads = objects.filter((o) => o.kind === 'StatefulSet' || o.kind === 'Deployment') as Workload[];
    const rabbit = workloads.find((w) => w.metadata.name === 'rabbitmq')!;
    const mounted = (rabbit.spec.template.spec.volumes ?? []).flatMap((v) => (v.configMap ? [v.configMap.name] : []));
    expect(mounted).toHaveLength(2);
    for (const name of mounted) expect(configMaps.has(name)).toBe(true);
    for (const s of objects.filter((o) => o.kind === 'Service') as (KubeObject & { spec: { selector: Record<string, string> } })[]) {
      const selected = workloads.filter((w) => Object.entries(s.spec.selector).every(([k, v]) => w.spec.template.metadata.labels[k] === v));
      expect({ service: s.metadata.name, selected: selected.length }).toEqual({ service: s.metadata.name, selected: 1 });
    }
  });

  test('the chart\'s dev connection strings point at Services and ports of the overlay', async () => {
    const values = parseYaml(await readFile(path.join(ROOT, 'k8s/dev/hub-values.yaml'), 'utf8')) as { secrets: Record<string, string> };
    const services = objects.filter((o) => o.kind === 'Service') as (KubeObject & { spec: { ports: { port: number }[] } })[];
    for (const key of ['databaseUrl', 'redisUrl', 'amqpUrl']) {
      const u = new URL(values.secrets[key]!);
      const svc = services.find((s) => s.metadata.name === u.hostname);
      expect({ key, port: svc?.spec.ports.some((p) => p.port === Number(u.port)) }).toEqual({ key, port: true });
    }
  });
});

describe('skaffold.yaml', () => {
  type Skaffold = {
    apiVersion: string;
    build: { artifacts: { image: string; docker: { dockerfile: string } }[] };
    manifests: { kustomize: { paths: string[] } };
    deploy: { helm: { releases: { chartPath: string; valuesFiles: string[]; setValueTemplates: Record<string, string> }[] } };
    profiles: { patches: { value: string[] }[] }[];
  };
  let s: Skaffold;
  beforeAll(async () => {
    s = parseYaml(await readFile(path.join(ROOT, 'skaffold.yaml'), 'utf8')) as Skaffold;
  });

  test('uses a v4beta schema and points at files that exist', () => {
    expect(s.apiVersion).toMatch(/^skaffold\/v4beta\d+$/);
    const release = s.deploy.helm.releases[0]!;
    const files = [
      s.build.artifacts[0]!.docker.dockerfile,
      ...s.manifests.kustomize.paths,
      release.chartPath,
      ...release.valuesFiles,
      ...s.profiles.flatMap((p) => p.patches.flatMap((x) => x.value)).map((f) => path.dirname(f)),
    ];
    for (const f of files) expect({ f, exists: existsSync(path.join(ROOT, f)) }).toEqual({ f, exists: true });
  });

  test('the release renders with the dev values and the image skaffold built, by digest', async () => {
    const release = s.deploy.helm.releases[0]!;
    const image = s.build.artifacts[0]!.image.replace(/-/g, '_');
    const built = { [`IMAGE_REPO_${image}`]: 'localhost:5000/integration-hub', [`IMAGE_TAG_${image}`]: 'abc123', [`IMAGE_DIGEST_${image}`]: 'sha256:0123' };
    const sets = Object.entries(release.setValueTemplates).map(([k, tpl]) => {
      const value = tpl.replace(/\{\{\.(\w+)\}\}/g, (_, v: string) => {
        if (!(v in built)) throw new Error(`${k} uses ${v}, which skaffold does not set for image ${image}`);
        return built[v]!;
      });
      return ['--set', `${k}=${value}`];
    });
    const out = await mustRun(await helm(), [
      'template', 'hub', path.join(ROOT, release.chartPath), '--namespace', 'integration-hub-dev',
      ...release.valuesFiles.flatMap((f) => ['-f', path.join(ROOT, f)]), ...sets.flat(),
    ]);
    const objs = parseYamlDocs(out);
    for (const o of objs) await validateKubeObject(o);
    const images = new Set(out.match(/image: \S+/g));
    expect([...images]).toEqual(['image: localhost:5000/integration-hub:abc123@sha256:0123']);
    expect(objs.some((o) => o.kind === 'ServiceMonitor' || o.kind === 'Ingress')).toBe(false);
  });
});

describe('RabbitMQ definitions', () => {
  let fromDefinitions: TestVhost;
  let fromCode: TestVhost;
  beforeAll(async () => {
    [fromDefinitions, fromCode] = await Promise.all([createVhost('defs'), createVhost('code')]);
  });
  afterAll(async () => {
    await Promise.all([fromDefinitions?.close(), fromCode?.close()]);
  });

  async function onChannel(url: string, fn: (ch: ConfirmChannel) => Promise<void>) {
    const conn = connectAmqp(url, pino({ level: 'silent' }), { name: 'definitions test' });
    const ch = conn.createChannel({ json: false });
    try {
      await ch.waitForConnect();
      await ch.addSetup(fn);
    } finally {
      await ch.close();
      await conn.close();
    }
  }

  const listed = async (vhost: string) => {
    const q = async (what: string, fields: string[]) =>
      JSON.parse((await exec('rabbitmqctl', [what, '-p', vhost, '-q', '--formatter', 'json', ...fields])).stdout) as Record<string, unknown>[];
    const byName = (a: Record<string, unknown>, b: Record<string, unknown>) => JSON.stringify(a).localeCompare(JSON.stringify(b));
    return {
      exchanges: (await q('list_exchanges', ['name', 'type', 'durable'])).filter((e) => String(e.name).startsWith('smart-home')).sort(byName),
      queues: (await q('list_queues', ['name', 'durable', 'arguments'])).sort(byName),
      bindings: (await q('list_bindings', ['source_name', 'destination_name', 'routing_key'])).filter((b) => b.source_name !== '').sort(byName),
    };
  };

  test('declare exactly what assertBaseTopology declares', async () => {
    const defs = JSON.parse(await readFile(path.join(ROOT, 'k8s/rabbitmq/definitions.json'), 'utf8')) as {
      exchanges: { name: string; type: string; durable: boolean; arguments: Record<string, unknown> }[];
      queues: { name: string; durable: boolean; arguments: Record<string, unknown> }[];
      bindings: { source: string; destination: string; routing_key: string }[];
    };
    await onChannel(fromDefinitions.url, async (ch) => {
      for (const e of defs.exchanges) await ch.assertExchange(e.name, e.type, { durable: e.durable, arguments: e.arguments });
      for (const q of defs.queues) await ch.assertQueue(q.name, { durable: q.durable, arguments: q.arguments });
      for (const b of defs.bindings) await ch.bindQueue(b.destination, b.source, b.routing_key);
    });
    await onChannel(fromCode.url, (ch) => assertBaseTopology(ch));
    const [a, b] = await Promise.all([listed(fromDefinitions.vhost), listed(fromCode.vhost)]);
    expect(a.queues.length).toBeGreaterThan(0);
    expect(a).toEqual(b);
  });
});
