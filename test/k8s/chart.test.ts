// The Helm chart rendered with the real helm binary, for the default values and a production-like
// values file: lint, every object valid for its kind, and the wiring SREs rely on.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, test } from '@jest/globals';
import { parse as parseYaml } from 'yaml';
import { helm, mustRun, promtool, ROOT, run } from '../support/tools.js';
import { CHART, PRODUCTION, renderChart } from '../support/chart.js';
import { validateKubeObject, type KubeObject } from '../support/kube-schemas.js';
import { PENDING_ENTRY_POINTS } from '../support/pending.js';
import type { ZodObject, ZodRawShape } from 'zod';
import { allioSyncEnv } from '../../services/allio-sync/config.js';
import { apiEnv, tenantApiEnv } from '../../services/api/config.js';
import { kitchenApiEnv, kitchenApiSwitch } from '../../services/api/kitchen/config.js';
import { kitchenEnv } from '../../services/kitchen/config.js';
import { mqBridgeEnv } from '../../services/domains/smart-home/config.js';
import { operatorConfig, operatorEnv } from '../../services/operator/config.js';
import { loadConfig } from '../../services/core/config.js';

type Container = {
  name: string;
  args?: string[];
  env?: {
    name: string;
    value?: string;
    valueFrom?: { secretKeyRef?: { name: string; key: string } };
  }[];
  livenessProbe?: { httpGet?: { path: string } };
  readinessProbe?: { httpGet?: { path: string } };
  resources?: { requests?: Record<string, string> };
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
};
type PodSpec = {
  containers: Container[];
  securityContext?: { runAsNonRoot?: boolean };
  serviceAccountName?: string;
};

const podSpec = (o: KubeObject): PodSpec =>
  o.kind === 'Pod'
    ? (o.spec as PodSpec)
    : (o.spec as { template: { spec: PodSpec } }).template.spec;
const ofKind = (objs: KubeObject[], kind: string) => objs.filter((o) => o.kind === kind);
const named = (objs: KubeObject[], kind: string, name: string): KubeObject => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name} rendered`);
  return o;
};

let defaults: KubeObject[];
let production: KubeObject[];

beforeAll(async () => {
  defaults = await renderChart();
  production = await renderChart(['-f', PRODUCTION]);
}, 120_000);

describe('helm chart', () => {
  test('helm lint passes strictly for the default and the production values', async () => {
    const bin = await helm();
    for (const extra of [[], ['-f', PRODUCTION]]) {
      const r = await run(bin, ['lint', '--strict', CHART, ...extra]);
      expect({ code: r.code, out: r.stdout }).toEqual({
        code: 0,
        out: expect.stringContaining('0 chart(s) failed'),
      });
    }
  });

  test('values that break values.schema.json are refused before rendering', async () => {
    const r = await run(await helm(), [
      'template',
      'hub',
      CHART,
      '--set',
      'services.api.entryPoint=main.js',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('services.api.entryPoint');
  });

  test('every rendered object is valid for its kind (Kubernetes, Prometheus Operator and cert-manager schemas)', async () => {
    for (const o of [...defaults, ...production]) await validateKubeObject(o);
    expect(new Set(defaults.map((o) => o.kind))).toEqual(
      new Set([
        'ConfigMap',
        'Secret',
        'Deployment',
        'Service',
        'Ingress',
        'Issuer',
        'PodDisruptionBudget',
        'NetworkPolicy',
        'HorizontalPodAutoscaler',
        'ServiceAccount',
        'Role',
        'RoleBinding',
        'Job',
        'ServiceMonitor',
        'PrometheusRule',
        'Pod',
      ]),
    );
  });

  test('every object carries the recommended app.kubernetes.io labels', () => {
    for (const o of [...defaults, ...production]) {
      expect({ o: `${o.kind}/${o.metadata.name}`, labels: o.metadata.labels }).toEqual({
        o: `${o.kind}/${o.metadata.name}`,
        labels: expect.objectContaining({
          'app.kubernetes.io/name': 'integration-hub',
          'app.kubernetes.io/instance': 'hub',
          'app.kubernetes.io/managed-by': 'Helm',
          'app.kubernetes.io/part-of': 'integration-hub',
          'app.kubernetes.io/version': expect.any(String),
        }),
      });
    }
  });

  test('each service runs its own entry point of the one image, non-root, probed on /healthz and /readyz', () => {
    const deployments = ofKind(production, 'Deployment');
    expect(
      deployments.map((d) => d.metadata.labels?.['app.kubernetes.io/component']).sort(),
    ).toEqual(['allio-sync', 'api', 'kitchen', 'mq-bridge', 'operator']);
    const images = new Set<string>();
    for (const d of deployments) {
      const svc = d.metadata.labels!['app.kubernetes.io/component']!;
      const spec = podSpec(d);
      const c = spec.containers[0]!;
      images.add((c as { image?: string }).image ?? '');
      expect(c.args).toEqual([`dist/services/${svc}/main.js`]);
      expect(c.livenessProbe?.httpGet?.path).toBe('/healthz');
      expect(c.readinessProbe?.httpGet?.path).toBe('/readyz');
      expect(c.resources?.requests).toEqual(
        expect.objectContaining({ cpu: expect.any(String), memory: expect.any(String) }),
      );
      expect(spec.securityContext?.runAsNonRoot).toBe(true);
      expect(c.securityContext).toEqual(
        expect.objectContaining({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false }),
      );
      expect(c.env?.find((e) => e.name === 'DATABASE_URL')?.valueFrom?.secretKeyRef).toEqual({
        name: 'integration-hub-connections',
        key: 'DATABASE_URL',
      });
    }
    expect([...images]).toEqual(['registry.example.com/integration-hub:1.4.2']);
  });

  test('each enabled entry point exists in the sources that npm run build compiles (pending ones are named)', () => {
    for (const d of ofKind(production, 'Deployment')) {
      const svc = d.metadata.labels!['app.kubernetes.io/component']!;
      const source = path.join(ROOT, `services/${svc}/main.ts`);
      // A pending service that has landed must leave the list, so that it is checked like the others.
      expect({ svc, exists: existsSync(source) }).toEqual({
        svc,
        exists: !PENDING_ENTRY_POINTS.includes(svc),
      });
    }
    const job = ofKind(defaults, 'Job')[0]!;
    expect(podSpec(job).containers[0]!.args).toEqual(['dist/services/cli/main.js', 'migrate']);
    expect(existsSync(path.join(ROOT, 'services/cli/main.ts'))).toBe(true);
  });

  test('per-service env, secret references and extra env are wired without template changes (kitchen)', () => {
    const kitchen = podSpec(named(production, 'Deployment', 'hub-integration-hub-kitchen'))
      .containers[0]!;
    const env = Object.fromEntries((kitchen.env ?? []).map((e) => [e.name, e]));
    expect(env.KITCHEN_ROBOTS_URL?.value).toBe('https://robots.kitchen.example.com');
    expect(env.KITCHEN_ROBOTS_API_KEY?.valueFrom?.secretKeyRef).toEqual({
      name: 'kitchen-partners',
      key: 'robots-api-key',
    });
    expect(env.NODE_EXTRA_CA_CERTS?.value).toBe('/etc/ssl/certs/ca-certificates.crt');
    expect(env.AMQP_URL?.valueFrom?.secretKeyRef?.key).toBe('AMQP_URL');
    const cm = named(production, 'ConfigMap', 'hub-integration-hub-config') as KubeObject & {
      data: Record<string, string>;
    };
    expect(cm.data).toEqual(expect.objectContaining({ DATABASE_SCHEMA: 'hub', PORT: '8080' }));
    expect(env.DATABASE_POOL_MAX?.value).toBe('8');
  });

  test.each([
    ['default', () => defaults],
    ['production', () => production],
  ])(
    'every service of the %s values gets each variable its configuration requires',
    (_values, rendered) => {
      const objects = rendered();
      const schemas: Record<string, ZodObject<ZodRawShape>[]> = {
        api: [apiEnv.merge(kitchenApiSwitch), tenantApiEnv],
        'allio-sync': [allioSyncEnv],
        'mq-bridge': [mqBridgeEnv],
        kitchen: [kitchenEnv],
        operator: [operatorEnv],
      };
      const required = (s: ZodObject<ZodRawShape>) =>
        Object.entries(s.shape)
          .filter(([, field]) => !field.isOptional())
          .map(([name]) => name);
      const shared = Object.keys(
        (
          named(objects, 'ConfigMap', 'hub-integration-hub-config') as KubeObject & {
            data: Record<string, string>;
          }
        ).data,
      );
      const missing: string[] = [];
      for (const d of ofKind(objects, 'Deployment')) {
        const svc = d.metadata.name.replace('hub-integration-hub-', '');
        const env = podSpec(d).containers[0]!.env ?? [];
        const names = new Set([...shared, ...env.map((e) => e.name)]);
        const needs = [...(schemas[svc] ?? [])];
        if (env.some((e) => e.name === 'KITCHEN_API' && e.value === 'true')) {
          needs.push(kitchenApiEnv);
        }
        expect([svc, needs.length > 0]).toEqual([svc, true]);
        for (const s of needs) {
          for (const name of required(s)) if (!names.has(name)) missing.push(`${svc}: ${name}`);
        }
      }
      expect(missing).toEqual([]);
    },
  );

  test('the operator manages partner clients at Keycloak only with keycloak.url, its client secret from the Secret, and its configuration loads', async () => {
    const operatorEnvOf = (objects: KubeObject[]) => {
      const c = podSpec(named(objects, 'Deployment', 'hub-integration-hub-operator'))
        .containers[0]!;
      const shared = (
        named(objects, 'ConfigMap', 'hub-integration-hub-config') as KubeObject & {
          data: Record<string, string>;
        }
      ).data;
      return { env: Object.fromEntries((c.env ?? []).map((e) => [e.name, e])), shared };
    };
    const plain = operatorEnvOf(defaults);
    expect(Object.keys(plain.env).filter((n) => n.startsWith('KEYCLOAK_'))).toEqual([]);
    const prod = operatorEnvOf(production);
    expect(prod.env.KEYCLOAK_URL?.value).toBe('https://sso.example.com');
    expect(prod.env.KEYCLOAK_CLIENT_SECRET?.valueFrom?.secretKeyRef).toEqual({
      name: 'integration-hub-connections',
      key: 'KEYCLOAK_CLIENT_SECRET',
    });
    expect(prod.shared).toEqual(
      expect.objectContaining({
        RABBITMQ_PARTNER_VHOST: '/',
        RABBITMQ_RESOURCE_SERVER_ID: 'rabbitmq',
      }),
    );
    // What the pod would see, with each Secret reference standing for a value: the refined schema accepts it.
    const values = {
      ...prod.shared,
      ...Object.fromEntries(
        Object.values(prod.env).map((e) => [
          e.name,
          e.value ?? (e.valueFrom?.secretKeyRef ? 'postgres://from-secret/db' : 'hub'),
        ]),
      ),
    };
    values.AMQP_URL = 'amqp://from-secret';
    expect(loadConfig(operatorConfig, values)).toEqual(
      expect.objectContaining({
        KEYCLOAK_URL: 'https://sso.example.com',
        KEYCLOAK_REALM: 'integration-hub',
        KEYCLOAK_CLIENT_ID: 'hub-operator',
      }),
    );
    // An inline (development) Secret must then carry the operator's client secret.
    const r = await run(await helm(), [
      'template',
      'hub',
      CHART,
      '--set',
      'keycloak.url=https://sso.example.com',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'secrets.keycloakClientSecret (or secrets.existingSecret) is required when keycloak.url is set',
    );
  });

  test('with existingSecret no Secret is rendered and the migration hook reads the existing one', () => {
    expect(ofKind(production, 'Secret')).toEqual([]);
    const job = ofKind(production, 'Job')[0]!;
    expect(job.metadata.annotations?.['helm.sh/hook']).toBe('pre-install,pre-upgrade');
    const env = podSpec(job).containers[0]!.env!;
    expect(env.find((e) => e.name === 'DATABASE_URL')?.valueFrom?.secretKeyRef?.name).toBe(
      'integration-hub-connections',
    );
    // Development installs: the hook brings its own Secret, created before the Job.
    const hookSecret = named(defaults, 'Secret', 'hub-integration-hub-migrate');
    expect(hookSecret.metadata.annotations?.['helm.sh/hook-weight']).toBe('-10');
  });

  test('allio-sync mounts the Secrets that integrations reference under SECRETS_DIR', () => {
    const d = named(production, 'Deployment', 'hub-integration-hub-allio-sync');
    const c = podSpec(d).containers[0]! as Container & {
      volumeMounts: { name: string; mountPath: string }[];
    };
    expect(c.env?.find((e) => e.name === 'SECRETS_DIR')?.value).toBe(
      '/var/run/secrets/integration-hub',
    );
    expect(c.volumeMounts).toContainEqual(
      expect.objectContaining({
        mountPath: '/var/run/secrets/integration-hub/allio-residence-north',
      }),
    );
  });

  test('the Ingress routes the tenant API and webhooks to api, with TLS through cert-manager, and can drop both', async () => {
    const ing = ofKind(defaults, 'Ingress')[0]! as KubeObject & {
      spec: {
        tls?: unknown[];
        rules: { http: { paths: { path: string; backend: { service: { name: string } } }[] } }[];
      };
    };
    expect(ing.spec.rules[0]!.http.paths.map((p) => [p.path, p.backend.service.name])).toEqual([
      ['/v1/', 'hub-integration-hub-api'],
      ['/webhooks/allio/', 'hub-integration-hub-api'],
      ['/webhooks/warehouse', 'hub-integration-hub-api'],
    ]);
    expect(ing.metadata.annotations?.['cert-manager.io/issuer']).toBe(
      'hub-integration-hub-letsencrypt',
    );
    const issuer = ofKind(defaults, 'Issuer')[0]! as KubeObject & {
      spec: { acme: { server: string } };
    };
    expect(issuer.spec.acme.server).toBe('https://acme-v02.api.letsencrypt.org/directory');
    const prodIng = ofKind(production, 'Ingress')[0]!;
    expect(prodIng.metadata.annotations?.['cert-manager.io/cluster-issuer']).toBe(
      'letsencrypt-production',
    );
    expect(ofKind(production, 'Issuer')).toEqual([]);

    const plain = await renderChart(['--set', 'ingress.tls.enabled=false']);
    const plainIng = ofKind(plain, 'Ingress')[0]! as KubeObject & { spec: { tls?: unknown } };
    expect(plainIng.spec.tls).toBeUndefined();
    expect(
      Object.keys(plainIng.metadata.annotations ?? {}).filter((k) => k.startsWith('cert-manager')),
    ).toEqual([]);
    expect(ofKind(plain, 'Issuer')).toEqual([]);
  });

  test('api scales on CPU and requests per second; workers on their backlog metric', () => {
    type Hpa = KubeObject & {
      spec: {
        metrics: {
          type: string;
          resource?: { name: string };
          pods?: { metric: { name: string } };
          external?: {
            metric: { name: string; selector: { matchLabels: Record<string, string> } };
          };
        }[];
      };
    };
    const hpas = ofKind(production, 'HorizontalPodAutoscaler') as Hpa[];
    const byName: Record<string, Hpa['spec']['metrics']> = Object.fromEntries(
      hpas.map((h) => [h.metadata.labels!['app.kubernetes.io/component'], h.spec.metrics]),
    );
    expect(byName.api!.map((m) => m.resource?.name ?? m.pods?.metric.name)).toEqual([
      'cpu',
      'hub_http_requests_per_second',
    ]);
    expect(
      byName['allio-sync']!.map((m) => [
        m.type,
        m.external?.metric.name,
        m.external?.metric.selector.matchLabels.reconciler,
      ]),
    ).toEqual([
      ['External', 'hub_reconcile_backlog', 'allio-webhooks'],
      ['External', 'hub_reconcile_backlog', 'allio-sync'],
    ]);
    expect(
      byName['mq-bridge']!.map((m) => m.external?.metric.selector.matchLabels.reconciler),
    ).toEqual(['smart-home-requests']);
    // A Deployment under an HPA leaves replicas to it, or every upgrade would reset the scale.
    for (const h of hpas) {
      const d = named(production, 'Deployment', h.metadata.name) as KubeObject & {
        spec: { replicas?: number };
      };
      expect(d.spec.replicas).toBeUndefined();
    }
  });

  test('the operator has its ServiceAccount, namespaced RBAC for the resources and the Lease, and one lease name', () => {
    const d = named(defaults, 'Deployment', 'hub-integration-hub-operator');
    const spec = podSpec(d);
    expect(spec.serviceAccountName).toBe('hub-integration-hub-operator');
    const env = Object.fromEntries((spec.containers[0]!.env ?? []).map((e) => [e.name, e.value]));
    expect(env.OPERATOR_LEASE_NAME).toBe('integration-hub-operator');
    type Role = KubeObject & {
      rules: {
        apiGroups: string[];
        resources: string[];
        verbs: string[];
        resourceNames?: string[];
      }[];
    };
    const roles = ofKind(defaults, 'Role') as Role[];
    const rules = roles.flatMap((r) => r.rules);
    expect(rules).toContainEqual(
      expect.objectContaining({
        resources: ['alliointegrations/status', 'smarthomepartners/status'],
      }),
    );
    expect(rules).toContainEqual(
      expect.objectContaining({
        resources: ['alliointegrations/finalizers', 'smarthomepartners/finalizers'],
      }),
    );
    expect(rules).toContainEqual(
      expect.objectContaining({
        apiGroups: ['coordination.k8s.io'],
        resourceNames: ['integration-hub-operator'],
        verbs: ['get', 'update'],
      }),
    );
    // Secrets: none by default; in production exactly the listed webhook-key Secrets, by name, read only.
    expect(rules.filter((r) => r.resources.includes('secrets'))).toEqual([]);
    const productionRules = (ofKind(production, 'Role') as Role[]).flatMap((r) => r.rules);
    expect(productionRules.filter((r) => r.resources.includes('secrets'))).toEqual([
      {
        apiGroups: [''],
        resources: ['secrets'],
        resourceNames: ['allio-residence-north'],
        verbs: ['get'],
      },
    ]);
    // No other service gets an API token.
    for (const other of ofKind(defaults, 'Deployment').filter((x) => x !== d)) {
      expect(
        (podSpec(other) as PodSpec & { automountServiceAccountToken?: boolean })
          .automountServiceAccountToken,
      ).toBe(false);
    }
  });

  test("PDBs and NetworkPolicies select each service's pods; only api admits the ingress controller", () => {
    const deployments = ofKind(defaults, 'Deployment') as (KubeObject & {
      spec: { selector: { matchLabels: Record<string, string> } };
    })[];
    const policies = ofKind(defaults, 'NetworkPolicy') as (KubeObject & {
      spec: { podSelector: { matchLabels: Record<string, string> }; ingress: unknown[] };
    })[];
    expect(policies.map((p) => p.spec.podSelector.matchLabels).sort(byComponent)).toEqual(
      deployments.map((d) => d.spec.selector.matchLabels).sort(byComponent),
    );
    const api = policies.find(
      (p) => p.spec.podSelector.matchLabels['app.kubernetes.io/component'] === 'api',
    )!;
    expect(api.spec.ingress).toHaveLength(2);
    for (const p of policies.filter((x) => x !== api)) expect(p.spec.ingress).toHaveLength(1);
    const pdbs = ofKind(defaults, 'PodDisruptionBudget') as (KubeObject & {
      spec: { selector: { matchLabels: Record<string, string> } };
    })[];
    expect(
      pdbs.map((p) => p.spec.selector.matchLabels['app.kubernetes.io/component']).sort(),
    ).toEqual(['api', 'mq-bridge', 'operator']);
  });

  test('allio-sync and kitchen may only reach DNS, their backing services and the listed partner destinations', () => {
    type Port = { port: number; protocol: string };
    type Rule = {
      to: {
        ipBlock?: { cidr: string };
        podSelector?: { matchLabels: Record<string, string> };
        namespaceSelector?: unknown;
      }[];
      ports: Port[];
    };
    type Policy = KubeObject & { spec: { policyTypes: string[]; egress?: Rule[] } };
    const policy = (objs: KubeObject[], svc: string) =>
      named(objs, 'NetworkPolicy', `hub-integration-hub-${svc}`) as Policy;
    const peers = (p: Policy) =>
      (p.spec.egress ?? []).map((r) => ({
        to: r.to.map(
          (t) =>
            t.ipBlock?.cidr ??
            t.podSelector?.matchLabels['app.kubernetes.io/name'] ??
            t.podSelector?.matchLabels['k8s-app'],
        ),
        ports: r.ports.map((x) => `${x.port}/${x.protocol}`),
      }));
    const dns = { to: ['kube-dns'], ports: ['53/UDP', '53/TCP'] };
    expect(peers(policy(production, 'allio-sync'))).toEqual([
      dns,
      { to: ['postgresql'], ports: ['5432/TCP'] },
      { to: ['redis'], ports: ['6379/TCP'] },
      { to: ['198.51.100.0/28'], ports: ['443/TCP'] },
    ]);
    expect(peers(policy(production, 'kitchen'))).toEqual([
      dns,
      { to: ['postgresql'], ports: ['5432/TCP'] },
      { to: ['rabbitmq'], ports: ['5672/TCP', '5671/TCP'] },
      { to: ['203.0.113.32/29'], ports: ['443/TCP'] },
      { to: ['192.0.2.16/28'], ports: ['443/TCP'] },
      { to: ['192.0.2.64/32'], ports: ['443/TCP'] },
    ]);
    for (const objs of [defaults, production]) {
      // Egress is denied by default for the partner callers: the policy type is set even with no partner listed.
      expect(policy(objs, 'allio-sync').spec.policyTypes).toEqual(['Ingress', 'Egress']);
      for (const svc of ['api', 'mq-bridge', 'operator']) {
        expect(policy(objs, svc).spec.policyTypes).toEqual(['Ingress']);
      }
    }
    expect(peers(policy(defaults, 'allio-sync')).map((r) => r.to[0])).toEqual([
      'kube-dns',
      'postgresql',
      'redis',
    ]);
  });

  test('the outbound policy reaches every service through the shared ConfigMap; the schema refuses a Secret not bound to an integration and a partner without ports', async () => {
    const cm = named(production, 'ConfigMap', 'hub-integration-hub-config') as KubeObject & {
      data: Record<string, string>;
    };
    expect(cm.data).toEqual(
      expect.objectContaining({
        OUTBOUND_ALLOW_HTTP: 'false',
        OUTBOUND_ALLOWED_HOSTS: expect.stringContaining('api.allio.example'),
        OUTBOUND_MAX_RESPONSE_BYTES: '4194304',
        RETRY_AFTER_MAX_MS: '300000',
      }),
    );
    const bin = await helm();
    for (const bad of [
      ['--set', 'services.allio-sync.integrationSecrets[0]=kitchen-partners'],
      [
        '--set',
        'networkPolicy.egress.partners.allio-sync[0].name=allio',
        '--set',
        'networkPolicy.egress.partners.allio-sync[0].cidr=198.51.100.0/28',
      ],
    ]) {
      const r = await run(bin, ['template', 'hub', CHART, ...bad]);
      expect({ bad, code: r.code }).toEqual({ bad, code: 1 });
    }
  });

  test('config.installation names the installation for every service (HUB_INSTALLATION in the shared ConfigMap), and the schema refuses a name the services would refuse', async () => {
    const cmOf = (objects: KubeObject[]) =>
      (
        named(objects, 'ConfigMap', 'hub-integration-hub-config') as KubeObject & {
          data: Record<string, string>;
        }
      ).data;
    expect(cmOf(defaults).HUB_INSTALLATION).toBeUndefined();
    const north = cmOf(await renderChart(['--set', 'config.installation=north-2']));
    expect(north.HUB_INSTALLATION).toBe('north-2');
    expect(loadConfig(kitchenEnv.pick({ HUB_INSTALLATION: true }), north).HUB_INSTALLATION).toBe(
      'north-2',
    );
    const r = await run(await helm(), [
      'template',
      'hub',
      CHART,
      '--set',
      'config.installation=North_2',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('config.installation');
  });

  test('the helm test pod checks /readyz of every enabled service', () => {
    const pod = ofKind(defaults, 'Pod')[0]!;
    expect(pod.metadata.annotations?.['helm.sh/hook']).toBe('test');
    const c = podSpec(pod).containers[0]!;
    expect(c.args).toEqual(['dist/services/cli/check-ready.js']);
    expect(existsSync(path.join(ROOT, 'services/cli/check-ready.ts'))).toBe(true);
    const urls = c
      .env!.find((e) => e.name === 'CHECK_URLS')!
      .value!.trim()
      .split(',');
    expect(urls).toEqual(
      ['allio-sync', 'api', 'mq-bridge', 'operator'].map(
        (s) => `http://hub-integration-hub-${s}:80/readyz`,
      ),
    );
  });

  test('the ServiceMonitor scrapes every hub Service and the dashboard ConfigMap carries the sidecar label', () => {
    const sm = ofKind(defaults, 'ServiceMonitor')[0]! as KubeObject & {
      spec: {
        selector: { matchLabels: Record<string, string> };
        endpoints: { port: string; path: string }[];
      };
    };
    const services = ofKind(defaults, 'Service');
    const selected = services.filter((s) =>
      Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => s.metadata.labels?.[k] === v),
    );
    expect(selected).toHaveLength(services.length);
    expect(sm.spec.endpoints[0]).toEqual(
      expect.objectContaining({ port: 'http', path: '/metrics' }),
    );
    const cm = named(defaults, 'ConfigMap', 'hub-integration-hub-dashboard') as KubeObject & {
      data: Record<string, string>;
    };
    expect(cm.metadata.labels?.grafana_dashboard).toBe('1');
    expect((JSON.parse(cm.data['integration-hub.json']!) as { uid: string }).uid).toBe(
      'integration-hub',
    );
  });

  test('the rendered PrometheusRule passes promtool check rules and its alerts behave as their unit tests say', async () => {
    const rule = ofKind(production, 'PrometheusRule')[0]! as KubeObject & {
      spec: { groups: { rules: { alert?: string }[] }[] };
    };
    expect(rule.metadata.labels?.release).toBe('kube-prometheus-stack');
    const dir = await mkdtemp(path.join(tmpdir(), 'hub-rules-'));
    const file = path.join(dir, 'rules.yaml');
    await writeFile(file, JSON.stringify(rule.spec));
    const out = await mustRun(promtool(), ['check', 'rules', file]);
    const alerts = rule.spec.groups.flatMap((g) => g.rules.map((r) => r.alert));
    expect(out).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(alerts).toEqual(
      expect.arrayContaining([
        'HubBacklogStuck',
        'HubRetriesExhausted',
        'HubQuotaWaitsHigh',
        'HubSmartHomePartnerSilent',
        'HubTokenRequestsFailing',
      ]),
    );
    // The unit tests of the rules file fire and clear each alert on synthetic series.
    const tests = await mustRun(promtool(), [
      'test',
      'rules',
      path.join(CHART, 'rules/alerts.test.yaml'),
    ]);
    expect(tests).toContain('SUCCESS');
    const tested = parseYaml(
      await readFile(path.join(CHART, 'rules/alerts.test.yaml'), 'utf8'),
    ) as {
      tests: { alert_rule_test?: { alertname: string }[] }[];
    };
    const covered = new Set(
      tested.tests.flatMap((t) => (t.alert_rule_test ?? []).map((a) => a.alertname)),
    );
    expect([...covered].sort()).toEqual([...new Set(alerts)].sort());
  });
});

function byComponent(a: Record<string, string>, b: Record<string, string>): number {
  return (a['app.kubernetes.io/component'] ?? '').localeCompare(
    b['app.kubernetes.io/component'] ?? '',
  );
}
