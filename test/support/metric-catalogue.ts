// The metrics the services define, read from the code itself: every metrics factory (an exported
// function named …Metrics in a module that uses prom-client) is run on a fresh registry.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Registry } from 'prom-client';
import { ROOT } from './tools.js';

export interface CodeMetric {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary';
  labels: string[];
  /** The factory that registers it: `services/…/file.ts:factoryName`. */
  factory: string;
}

export interface MetricCatalogue {
  metrics: Map<string, CodeMetric>;
  factories: string[];
  /** Every `'hub_…'` string literal in a services/ module that uses prom-client, with its file. */
  literals: { name: string; file: string }[];
}

/** Every .ts file under services/ that is not a test. */
export async function serviceSources(dir = path.join(ROOT, 'services')): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await serviceSources(p)));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

export async function metricCatalogue(): Promise<MetricCatalogue> {
  const metrics = new Map<string, CodeMetric>();
  const factories: string[] = [];
  const literals: { name: string; file: string }[] = [];
  for (const file of await serviceSources()) {
    const text = await readFile(file, 'utf8');
    if (!text.includes("from 'prom-client'")) continue;
    const rel = path.relative(ROOT, file);
    for (const m of text.matchAll(/'(hub_[a-z0-9_]+)'/g)) literals.push({ name: m[1]!, file: rel });
    // Module exports are inspected by name; their types differ per module.
    const mod = (await import(file)) as Record<string, unknown>;
    for (const [name, fn] of Object.entries(mod)) {
      if (typeof fn !== 'function' || !/metrics$/i.test(name)) continue;
      const registry = new Registry();
      (fn as (r: Registry) => unknown)(registry);
      const factory = `${rel}:${name}`;
      factories.push(factory);
      // prom-client keeps each metric's label names on the metric object; its typings omit them.
      for (const m of registry.getMetricsAsArray() as unknown as {
        name: string;
        type: CodeMetric['type'];
        labelNames?: string[];
      }[]) {
        metrics.set(m.name, {
          name: m.name,
          type: m.type,
          labels: [...(m.labelNames ?? [])],
          factory,
        });
      }
    }
  }
  return { metrics, factories, literals };
}

/** The series names a metric is queried by: a histogram's _bucket/_sum/_count, a summary's _sum/_count. */
export function seriesOf(m: Pick<CodeMetric, 'name' | 'type'>): string[] {
  if (m.type === 'histogram') {
    return [m.name, ...['_bucket', '_sum', '_count'].map((s) => `${m.name}${s}`)];
  }
  if (m.type === 'summary') return [m.name, ...['_sum', '_count'].map((s) => `${m.name}${s}`)];
  return [m.name];
}
