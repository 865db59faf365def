// What is outside the chart: the dev overlay renders with kubectl kustomize and wires the chart's
// dev connection strings to real Services, Keycloak imports the partners' realm with every secret
// it names, skaffold.yaml points at files and values that exist, the RabbitMQ definitions declare
// exactly the topology the code declares, and rabbitmq.conf passes the broker's own schemas.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { ConfirmChannel } from 'amqplib';
import { parse as parseYaml } from 'yaml';
import { connectAmqp } from '../../services/core/amqp.js';
import { assertRepliesTopology } from '../../services/contracts/smart-home-topology.js';
import type { KeycloakRealm } from '../../services/domains/partner-access/keycloak-realm.js';
import { realmSecretVariables } from '../support/keycloak-realm.js';
import { DEFAULT_RESOURCE_SERVER_ID } from '../../services/domains/partner-access/scopes.js';
import { checkRabbitConf, rabbitmqPluginsDir } from '../support/rabbitmq-schema.js';
import { createVhost, type TestVhost } from '../support/amqp.js';
import { parseYamlDocs, validateKubeObject, type KubeObject } from '../support/kube-schemas.js';
import { helm, kubectl, mustRun, ROOT } from '../support/tools.js';
import { pino } from 'pino';

const exec = promisify(execFile);

describe('dev overlay', () => {
  let objects: KubeObject[];
  beforeAll(async () => {
    objects = parseYamlDocs(
      await mustRun(await kubectl(), ['kustomize', path.join(ROOT, 'k8s/dev')]),
    );
  }, 60_000);

  test('kubectl kustomize renders valid objects, all in the dev namespace', async () => {
    for (const o of objects) await validateKubeObject(o);
    expect(
      objects
        .filter((o) => o.kind !== 'Namespace')
        .every((o) => o.metadata.namespace === 'integration-hub-dev'),
    ).toBe(true);
  });

  type Container = {
    args?: string[];
    ports?: { name: string; containerPort: number }[];
    envFrom?: { secretRef?: { name: string } }[];
    volumeMounts?: { name: string; mountPath: string; subPath?: string }[];
  };
  type Volume = {
    name: string;
    configMap?: { name: string };
    secret?: { secretName: string; items?: { key: string; path: string }[] };
  };
  type Pod = KubeObject & {
    spec: { template: { spec: { containers: Container[]; volumes?: Volume[] } } };
  };
  const workload = (name: string) =>
    objects.find(
      (o) => (o.kind === 'Deployment' || o.kind === 'StatefulSet') && o.metadata.name === name,
    ) as Pod;
  /** What a container sees at `mountPath`: the volume behind the mount. */
  const mountedAt = (w: Pod, mountPath: string): Volume | undefined => {
    const m = w.spec.template.spec.containers[0]!.volumeMounts?.find(
      (x) => x.mountPath === mountPath,
    );
    return w.spec.template.spec.volumes?.find((v) => v.name === m?.name);
  };
  type Certificate = KubeObject & {
    spec: { secretName: string; dnsNames?: string[]; issuerRef: { name: string; kind: string } };
  };
  const certificateFor = (secretName: string) =>
    (objects.filter((o) => o.kind === 'Certificate') as Certificate[]).find(
      (c) => c.spec.secretName === secretName,
    );

  test("Keycloak imports the realm ConfigMap at start and has every variable the realm's placeholders name", async () => {
    const kc = workload('keycloak');
    const c = kc.spec.template.spec.containers[0]!;
    // With the per-client login counter the HubKeycloakClientLoginsFailing alert reads.
    expect(c.args).toEqual([
      'start-dev',
      '--import-realm',
      '--metrics-enabled=true',
      '--event-metrics-user-enabled=true',
      '--event-metrics-user-tags=realm,client_id',
      '--event-metrics-user-events=client_login',
    ]);
    const realmMap = mountedAt(kc, '/opt/keycloak/data/import')?.configMap?.name ?? '';
    const cm = objects.find(
      (o) => o.kind === 'ConfigMap' && o.metadata.name === realmMap,
    ) as KubeObject & { data: Record<string, string> };
    const file = await readFile(path.join(ROOT, 'k8s/keycloak/realm-integration-hub.json'), 'utf8');
    expect(cm.data['realm-integration-hub.json']).toBe(file);
    const secretName = c.envFrom?.find((e) => e.secretRef)?.secretRef?.name;
    const secret = objects.find(
      (o) => o.kind === 'Secret' && o.metadata.name === secretName,
    ) as KubeObject & { data: Record<string, string> };
    const needed = realmSecretVariables(JSON.parse(file) as KeycloakRealm);
    expect(needed.filter((v) => !secret.data[v])).toEqual([]);
    // HTTPS (for RabbitMQ's JWKS fetches and partners) with a certificate for the Service's name.
    expect(
      certificateFor(mountedAt(kc, '/opt/keycloak/conf/tls')?.secret?.secretName ?? '')?.spec
        .dnsNames,
    ).toContain('keycloak');
  });

  test('every Certificate is signed by an Issuer of the overlay, down to the self-signed root', () => {
    const issuers = new Map(
      (
        objects.filter((o) => o.kind === 'Issuer') as (KubeObject & {
          spec: { ca?: { secretName: string } };
        })[]
      ).map((i) => [i.metadata.name, i]),
    );
    const certs = objects.filter((o) => o.kind === 'Certificate') as Certificate[];
    expect(certs.map((c) => c.spec.secretName).sort()).toEqual([
      'dev-ca',
      'keycloak-tls',
      'rabbitmq-tls',
    ]);
    for (const c of certs) {
      expect({
        cert: c.metadata.name,
        issuer: issuers.has(c.spec.issuerRef.name) && c.spec.issuerRef.kind === 'Issuer',
      }).toEqual({ cert: c.metadata.name, issuer: true });
      const ca = issuers.get(c.spec.issuerRef.name)!.spec.ca;
      if (ca) expect(certs.some((x) => x.spec.secretName === ca.secretName)).toBe(true);
    }
  });

  test("RabbitMQ serves AMQPS with its certificate and trusts Keycloak's JWKS with the CA of Keycloak's certificate", async () => {
    const rabbit = workload('rabbitmq');
    const conf = await readFile(path.join(ROOT, 'k8s/rabbitmq/rabbitmq.conf'), 'utf8');
    const setting = (key: string) =>
      new RegExp(`^${key.replace(/\./g, '\\.')} = (.+)$`, 'm').exec(conf)?.[1];
    // Every file the configuration names is on a mount of the pod.
    const files = conf.match(/\/etc\/rabbitmq\/[^\s]+/g) ?? [];
    for (const f of files) {
      expect({
        f,
        mounted: !!mountedAt(rabbit, path.dirname(f)) || !!mountedAt(rabbit, f),
      }).toEqual({ f, mounted: true });
    }
    expect(
      mountedAt(rabbit, path.dirname(setting('ssl_options.certfile')!))?.secret?.secretName,
    ).toBe('rabbitmq-tls');
    expect(certificateFor('rabbitmq-tls')?.spec.dnsNames).toContain('rabbitmq');
    const caVolume = mountedAt(
      rabbit,
      path.dirname(setting('auth_oauth2.https.cacertfile')!),
    )?.secret;
    const jwks = new URL(setting('auth_oauth2.jwks_url')!);
    expect(certificateFor(caVolume?.secretName ?? '')?.spec.dnsNames).toContain(jwks.hostname);
    // The JWKS host and port are the overlay's Keycloak Service on its HTTPS port.
    const svc = objects.find(
      (o) => o.kind === 'Service' && o.metadata.name === jwks.hostname,
    ) as KubeObject & { spec: { ports: { port: number; targetPort: string }[] } };
    expect(svc.spec.ports.find((p) => p.port === Number(jwks.port))?.targetPort).toBe('https');
    const amqps = objects.find(
      (o) => o.kind === 'Service' && o.metadata.name === 'rabbitmq',
    ) as KubeObject & { spec: { ports: { port: number }[] } };
    expect(amqps.spec.ports.map((p) => p.port)).toContain(Number(setting('listeners.ssl.default')));
    // enabled_plugins replaces the image's file: the management UI stays, the OAuth 2.0 backend joins it.
    expect(mountedAt(rabbit, '/etc/rabbitmq/enabled_plugins')?.configMap?.name).toMatch(
      /^rabbitmq-config-/,
    );
  });

  test('RabbitMQ mounts the generated definitions and config, and every Service selects a workload', () => {
    const configMaps = new Set(
      objects.filter((o) => o.kind === 'ConfigMap').map((o) => o.metadata.name),
    );
    type Workload = KubeObject & {
      spec: {
        template: {
          metadata: { labels: Record<string, string> };
          spec: { volumes?: { configMap?: { name: string } }[] };
        };
      };
    };
    const workloads = objects.filter(
      (o) => o.kind === 'StatefulSet' || o.kind === 'Deployment',
    ) as Workload[];
    const rabbit = workloads.find((w) => w.metadata.name === 'rabbitmq')!;
    const mounted = (rabbit.spec.template.spec.volumes ?? []).flatMap((v) =>
      v.configMap ? [v.configMap.name] : [],
    );
    expect(mounted).toHaveLength(2);
    for (const name of mounted) expect(configMaps.has(name)).toBe(true);
    for (const s of objects.filter((o) => o.kind === 'Service') as (KubeObject & {
      spec: { selector: Record<string, string> };
    })[]) {
      const selected = workloads.filter((w) =>
        Object.entries(s.spec.selector).every(([k, v]) => w.spec.template.metadata.labels[k] === v),
      );
      expect({ service: s.metadata.name, selected: selected.length }).toEqual({
        service: s.metadata.name,
        selected: 1,
      });
    }
  });

  test("the chart's dev values point the operator at the overlay's Keycloak with the secret its realm import gives the operator's client", async () => {
    const values = parseYaml(
      await readFile(path.join(ROOT, 'k8s/dev/hub-values.yaml'), 'utf8'),
    ) as { keycloak: { url: string }; secrets: Record<string, string> };
    const u = new URL(values.keycloak.url);
    const svc = objects.find(
      (o) => o.kind === 'Service' && o.metadata.name === u.hostname,
    ) as KubeObject & { spec: { ports: { port: number }[] } };
    expect(svc.spec.ports.map((p) => p.port)).toContain(Number(u.port));
    const secretName = workload('keycloak').spec.template.spec.containers[0]!.envFrom?.find(
      (e) => e.secretRef,
    )?.secretRef?.name;
    const secret = objects.find(
      (o) => o.kind === 'Secret' && o.metadata.name === secretName,
    ) as KubeObject & { data: Record<string, string> };
    expect(Buffer.from(secret.data.HUB_OPERATOR_CLIENT_SECRET!, 'base64').toString()).toBe(
      values.secrets.keycloakClientSecret,
    );
  });

  test("the chart's dev connection strings point at Services and ports of the overlay", async () => {
    const values = parseYaml(
      await readFile(path.join(ROOT, 'k8s/dev/hub-values.yaml'), 'utf8'),
    ) as { secrets: Record<string, string> };
    const services = objects.filter((o) => o.kind === 'Service') as (KubeObject & {
      spec: { ports: { port: number }[] };
    })[];
    for (const key of ['databaseUrl', 'redisUrl', 'amqpUrl']) {
      const u = new URL(values.secrets[key]!);
      const svc = services.find((s) => s.metadata.name === u.hostname);
      expect({ key, port: svc?.spec.ports.some((p) => p.port === Number(u.port)) }).toEqual({
        key,
        port: true,
      });
    }
  });
});

describe('skaffold.yaml', () => {
  type Skaffold = {
    apiVersion: string;
    build: { artifacts: { image: string; docker: { dockerfile: string } }[] };
    manifests: { kustomize: { paths: string[] } };
    deploy: {
      helm: {
        releases: {
          chartPath: string;
          valuesFiles: string[];
          setValueTemplates: Record<string, string>;
        }[];
      };
    };
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
    for (const f of files) {
      expect({ f, exists: existsSync(path.join(ROOT, f)) }).toEqual({ f, exists: true });
    }
  });

  test('the release renders with the dev values and the image skaffold built, by digest', async () => {
    const release = s.deploy.helm.releases[0]!;
    const image = s.build.artifacts[0]!.image.replace(/-/g, '_');
    const built = {
      [`IMAGE_REPO_${image}`]: 'localhost:5000/integration-hub',
      [`IMAGE_TAG_${image}`]: 'abc123',
      [`IMAGE_DIGEST_${image}`]: 'sha256:0123',
    };
    const sets = Object.entries(release.setValueTemplates).map(([k, tpl]) => {
      const value = tpl.replace(/\{\{\.(\w+)\}\}/g, (_, v: string) => {
        if (!(v in built)) {
          throw new Error(`${k} uses ${v}, which skaffold does not set for image ${image}`);
        }
        return built[v]!;
      });
      return ['--set', `${k}=${value}`];
    });
    const out = await mustRun(await helm(), [
      'template',
      'hub',
      path.join(ROOT, release.chartPath),
      '--namespace',
      'integration-hub-dev',
      ...release.valuesFiles.flatMap((f) => ['-f', path.join(ROOT, f)]),
      ...sets.flat(),
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
      JSON.parse(
        (await exec('rabbitmqctl', [what, '-p', vhost, '-q', '--formatter', 'json', ...fields]))
          .stdout,
      ) as Record<string, unknown>[];
    const byName = (a: Record<string, unknown>, b: Record<string, unknown>) =>
      JSON.stringify(a).localeCompare(JSON.stringify(b));
    return {
      exchanges: (await q('list_exchanges', ['name', 'type', 'durable']))
        .filter((e) => String(e.name).startsWith('smart-home'))
        .sort(byName),
      queues: (await q('list_queues', ['name', 'durable', 'arguments'])).sort(byName),
      bindings: (await q('list_bindings', ['source_name', 'destination_name', 'routing_key']))
        .filter((b) => b.source_name !== '')
        .sort(byName),
    };
  };

  test('declare exactly what assertRepliesTopology declares (the default installation)', async () => {
    const defs = JSON.parse(
      await readFile(path.join(ROOT, 'k8s/rabbitmq/definitions.json'), 'utf8'),
    ) as {
      exchanges: {
        name: string;
        type: string;
        durable: boolean;
        arguments: Record<string, unknown>;
      }[];
      queues: { name: string; durable: boolean; arguments: Record<string, unknown> }[];
      bindings: { source: string; destination: string; routing_key: string }[];
    };
    await onChannel(fromDefinitions.url, async (ch) => {
      for (const e of defs.exchanges) {
        await ch.assertExchange(e.name, e.type, { durable: e.durable, arguments: e.arguments });
      }
      for (const q of defs.queues) {
        await ch.assertQueue(q.name, { durable: q.durable, arguments: q.arguments });
      }
      for (const b of defs.bindings) await ch.bindQueue(b.destination, b.source, b.routing_key);
    });
    await onChannel(fromCode.url, (ch) => assertRepliesTopology(ch));
    const [a, b] = await Promise.all([listed(fromDefinitions.vhost), listed(fromCode.vhost)]);
    expect(a.queues.length).toBeGreaterThan(0);
    expect(a).toEqual(b);
  });
});

describe('RabbitMQ configuration', () => {
  let conf: string;
  beforeAll(async () => {
    conf = await readFile(path.join(ROOT, 'k8s/rabbitmq/rabbitmq.conf'), 'utf8');
  });
  const settings = () =>
    Object.fromEntries(
      conf
        .split('\n')
        .filter((l) => l.trim() && !l.startsWith('#'))
        .map((l) => l.split(' = ') as [string, string]),
    );

  test("hub services are internal users first; partners are checked by the OAuth 2.0 backend with the scopes' resource server id", () => {
    expect(settings()).toEqual(
      expect.objectContaining({
        'auth_backends.1': 'rabbit_auth_backend_internal',
        'auth_backends.2': 'rabbit_auth_backend_oauth2',
        'auth_oauth2.resource_server_id': DEFAULT_RESOURCE_SERVER_ID,
        'auth_oauth2.jwks_url': expect.stringMatching(
          /^https:\/\/[^/]+\/realms\/integration-hub\/protocol\/openid-connect\/certs$/,
        ),
        'auth_oauth2.https.peer_verification': 'verify_peer',
        'listeners.ssl.default': '5671',
      }),
    );
  });

  test('its lines pass the cuttlefish schemas of the RabbitMQ on this machine (rabbit and the OAuth 2.0 plugin)', async () => {
    // Settings of brokers newer than the one installed here (the hub runs on 3.12+).
    const newer = ['quorum_queue.initial_cluster_size'];
    const checked = conf
      .split('\n')
      .filter((l) => !newer.some((k) => l.startsWith(`${k} `)))
      .join('\n');
    const r = await checkRabbitConf(checked, ['rabbitmq_auth_backend_oauth2']);
    expect({ ok: r.ok, output: r.ok ? '' : r.output }).toEqual({ ok: true, output: '' });
    expect(r.output).toContain('{jwks_url,');
    expect(r.output).toContain('{ssl_listeners,[5671]}');
    // The check does refuse: 3.10 has no issuer setting, and the JWKS must be fetched over TLS.
    for (const bad of [
      'auth_oauth2.issuer = https://keycloak:8443/realms/integration-hub',
      'auth_oauth2.jwks_url = http://keycloak:8080/realms/integration-hub/protocol/openid-connect/certs',
    ]) {
      expect({
        bad,
        ok: (await checkRabbitConf(bad, ['rabbitmq_auth_backend_oauth2'])).ok,
      }).toEqual({ bad, ok: false });
    }
  }, 60_000);

  test('enabled_plugins is an Erlang list of plugins installed with the broker, the OAuth 2.0 backend among them', async () => {
    const text = await readFile(path.join(ROOT, 'k8s/rabbitmq/enabled_plugins'), 'utf8');
    const m = /^\[([a-z0-9_]+(?:,[a-z0-9_]+)*)\]\.\s*$/.exec(text);
    expect(m).not.toBeNull();
    const plugins = m![1]!.split(',');
    expect(plugins).toContain('rabbitmq_auth_backend_oauth2');
    const installed = new Set(
      (await readdir(await rabbitmqPluginsDir())).map((d) => d.replace(/-[\d.]+$/, '')),
    );
    expect(plugins.filter((p) => !installed.has(p))).toEqual([]);
  });
});
