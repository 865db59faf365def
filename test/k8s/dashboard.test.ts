// The Grafana dashboard, the metrics the code defines and the metric table of docs/operations.md
// agree: every metric is documented with its type and labels, every documented metric has a panel,
// and every panel queries metrics that exist, in a way that suits their type and labels.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, test } from '@jest/globals';
import {
  metricCatalogue,
  seriesOf,
  type CodeMetric,
  type MetricCatalogue,
} from '../support/metric-catalogue.js';
import { PENDING_METRICS } from '../support/pending.js';
import { mustRun, promtool, ROOT } from '../support/tools.js';

const DASHBOARD = path.join(ROOT, 'charts/integration-hub/dashboards/integration-hub.json');
const OPERATIONS = path.join(ROOT, 'docs/operations.md');

/** Labels Prometheus adds to every scraped series (ServiceMonitor target labels), and histogram buckets. */
const TARGET_LABELS = [
  'namespace',
  'pod',
  'service',
  'job',
  'instance',
  'container',
  'endpoint',
  'le',
];

interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Target[];
}
interface Dashboard {
  panels: Panel[];
  templating: { list: { name: string; definition?: string }[] };
}

interface DocRow {
  name: string;
  type: string;
  labels: string[];
}

/** The rows of the metric table under "## Probes and metrics" in docs/operations.md. */
function documentedMetrics(markdown: string): DocRow[] {
  const section = markdown.split(/^## /m).find((s) => s.startsWith('Probes and metrics')) ?? '';
  const rows: DocRow[] = [];
  for (const line of section.split('\n')) {
    const m = /^\| `(hub_[a-z0-9_]+)` \| ([a-z]+) \| ([^|]*) \|/.exec(line);
    if (!m) continue;
    // "reconciler, outcome (`done`, `retry`)": the label names, without their values; "—" is none.
    let column = m[3]!;
    while (/\([^()]*\)/.test(column)) column = column.replace(/\([^()]*\)/g, '');
    const labels = column
      .split(',')
      .map((l) => l.trim())
      .filter((l) => l && l !== '—');
    rows.push({ name: m[1]!, type: m[2]!, labels });
  }
  return rows;
}

/** Metric names in a PromQL expression: our families and the Node process families. */
const metricsIn = (expr: string) => [
  ...new Set(expr.match(/\b(?:hub|process|nodejs)_[a-z0-9_]+\b/g) ?? []),
];
/** Labels an expression aggregates by. */
const byLabels = (expr: string) =>
  [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) =>
    m[1]!
      .split(',')
      .map((l) => l.trim())
      .filter(Boolean),
  );
/** Labels inside `{…}` selectors. */
const selectorLabels = (expr: string) =>
  [...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) =>
    [...m[1]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!),
  );

let catalogue: MetricCatalogue;
let hubMetrics: CodeMetric[];
/** Series name → the metric it belongs to (a histogram's _bucket/_sum/_count included). */
let seriesIndex: Map<string, CodeMetric>;
let dashboard: Dashboard;
let docs: DocRow[];

beforeAll(async () => {
  catalogue = await metricCatalogue();
  hubMetrics = [...catalogue.metrics.values()].filter((m) => m.name.startsWith('hub_'));
  seriesIndex = new Map(
    [...catalogue.metrics.values()].flatMap((m) => seriesOf(m).map((s) => [s, m] as const)),
  );
  dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
  docs = documentedMetrics(await readFile(OPERATIONS, 'utf8'));
});

const queries = () =>
  dashboard.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ panel: p.title, id: p.id, ...t })),
  );

describe('metrics in the code', () => {
  test('every hub_ metric named in a module that uses prom-client is registered by a metrics factory', () => {
    expect(hubMetrics.length).toBeGreaterThan(40);
    const unregistered = catalogue.literals.filter((l) => !catalogue.metrics.has(l.name));
    expect(unregistered).toEqual([]);
  });
});

describe('docs/operations.md metric table', () => {
  test('lists every metric the code defines, with its type and labels', () => {
    const documented = new Map(docs.map((d) => [d.name, d]));
    const missing = hubMetrics
      .filter((m) => !documented.has(m.name))
      .map((m) => `${m.name} (${m.type}; ${m.labels.join(', ') || '—'}) — ${m.factory}`);
    expect(missing).toEqual([]);
    const wrong = hubMetrics
      .filter((m) => documented.has(m.name))
      .map((m) => ({
        name: m.name,
        code: { type: m.type, labels: [...m.labels].sort() },
        docs: {
          type: documented.get(m.name)!.type,
          labels: [...documented.get(m.name)!.labels].sort(),
        },
      }))
      .filter((r) => JSON.stringify(r.code) !== JSON.stringify(r.docs));
    expect(wrong).toEqual([]);
  });

  test('names only metrics the code defines, each once', () => {
    expect(docs.filter((d) => !catalogue.metrics.has(d.name)).map((d) => d.name)).toEqual([]);
    expect(docs.map((d) => d.name).filter((n, i, all) => all.indexOf(n) !== i)).toEqual([]);
  });
});

describe('Grafana dashboard', () => {
  test('every metric in the docs table has a panel', () => {
    const queried = new Set(
      queries()
        .flatMap((q) => metricsIn(q.expr))
        .map((s) => seriesIndex.get(s)?.name ?? s),
    );
    expect(docs.map((d) => d.name).filter((n) => !queried.has(n))).toEqual([]);
  });

  test('every query names metrics the services export', () => {
    const known = new Set([
      ...seriesIndex.keys(),
      ...PENDING_METRICS.flatMap((m) => seriesOf({ name: m, type: 'histogram' })),
    ]);
    const exprs = [
      ...queries().map((q) => ({ where: q.panel, expr: q.expr })),
      ...dashboard.templating.list
        .filter((v) => v.definition)
        .map((v) => ({ where: `variable ${v.name}`, expr: v.definition! })),
    ];
    for (const { where, expr } of exprs) {
      const names = metricsIn(expr);
      expect({
        where,
        expr,
        unknown: names.filter((n) => !known.has(n)),
        none: names.length === 0,
      }).toEqual({ where, expr, unknown: [], none: false });
    }
  });

  test('every query is valid PromQL (promtool check rules, with the Grafana variables filled in)', async () => {
    const rules = queries().map((q) => ({
      record: `dashboard:panel_${q.id}_${q.refId}`,
      expr: q.expr.replaceAll('$__rate_interval', '5m').replaceAll('$namespace', 'hub'),
    }));
    const dir = await mkdtemp(path.join(tmpdir(), 'hub-dashboard-'));
    try {
      const file = path.join(dir, 'queries.yaml');
      await writeFile(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
      expect(await mustRun(promtool(), ['check', 'rules', file])).toContain(
        `SUCCESS: ${rules.length} rules found`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('counters are read through rate() or increase(), histograms through histogram_quantile by le or their _count, gauges as they are', () => {
    const misuse: string[] = [];
    for (const { panel, expr } of queries()) {
      for (const series of metricsIn(expr)) {
        const m = seriesIndex.get(series);
        if (!m) continue;
        const rated = new RegExp(`\\b(?:rate|increase)\\(\\s*${series}\\b`).test(expr);
        const kind =
          m.type === 'histogram' && series !== m.name ? series.slice(m.name.length) : m.type;
        if (kind === 'counter' || kind === '_count' || kind === '_sum') {
          if (!rated) misuse.push(`${panel}: ${series} is a counter without rate()/increase()`);
        } else if (kind === '_bucket') {
          if (!rated || !/histogram_quantile\(/.test(expr) || !byLabels(expr).includes('le')) {
            misuse.push(
              `${panel}: ${series} outside histogram_quantile(…, sum by (…, le) (rate(…)))`,
            );
          }
        } else if (kind === 'histogram' || kind === 'summary') {
          misuse.push(`${panel}: ${series} is a ${kind}; query its _bucket, _count or _sum`);
        } else if (rated) {
          misuse.push(`${panel}: ${series} is a gauge inside rate()/increase()`);
        }
      }
    }
    expect(misuse).toEqual([]);
  });

  test('queries aggregate and filter by labels their metrics have, and legends name aggregated labels', () => {
    const wrong: string[] = [];
    for (const { panel, expr, legendFormat } of queries()) {
      const metrics = metricsIn(expr)
        .map((s) => seriesIndex.get(s))
        .filter((m): m is CodeMetric => m !== undefined);
      const allowed = new Set([...TARGET_LABELS, ...metrics.flatMap((m) => m.labels)]);
      for (const l of [...byLabels(expr), ...selectorLabels(expr)]) {
        if (!allowed.has(l)) wrong.push(`${panel}: ${expr} uses label ${l}`);
      }
      const by = new Set(byLabels(expr));
      for (const [, l] of (legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) {
        if (!by.has(l!)) wrong.push(`${panel}: legend {{${l}}} is not aggregated by in ${expr}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test('panels have unique ids, sit under a row and do not overlap', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
    expect(dashboard.panels[0]?.type).toBe('row');
    const cells = new Map<string, string>();
    const overlaps: string[] = [];
    for (const p of dashboard.panels) {
      const g = p.gridPos;
      expect({ title: p.title, fits: g.x >= 0 && g.x + g.w <= 24 }).toEqual({
        title: p.title,
        fits: true,
      });
      for (let y = g.y; y < g.y + g.h; y++) {
        for (let x = g.x; x < g.x + g.w; x++) {
          const other = cells.get(`${x},${y}`);
          if (other) overlaps.push(`${p.title} overlaps ${other}`);
          cells.set(`${x},${y}`, p.title);
        }
      }
    }
    expect([...new Set(overlaps)]).toEqual([]);
  });
});
