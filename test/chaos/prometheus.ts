// A real Prometheus in the loop: Debian's `prometheus` scrapes every pod (file_sd, rewritten as pods
// come and go) and evaluates the chart's alert rules (charts/integration-hub/rules/alerts.yaml).
// The chart's `for:` durations and range windows are minutes to hours; the run renders the rules
// with every duration divided by TIME_SCALE (and the one threshold that is a duration in seconds,
// HubBacklogStuck's 900 s, with it), the expressions otherwise as the chart has them, and says so.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { freePort } from '../../services/core/net.js';
import { ROOT } from '../fuzz/child.js';
import type { ChaosStack } from './stack.js';

export const RULES_FILE = path.join(ROOT, 'charts/integration-hub/rules/alerts.yaml');

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function toMs(d: string): number {
  let ms = 0;
  for (const m of d.matchAll(/(\d+)(ms|s|m|h|d)/g)) {
    ms += Number(m[1]) * (UNIT_MS[m[2] as string] ?? 0);
  }
  return ms;
}

function fromMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${Math.round(ms)}ms`;
}

/** Scales a duration, keeping range windows at least `minMs` (several scrapes). */
export function scaleDuration(d: string, scale: number, minMs: number): string {
  return fromMs(Math.max(minMs, Math.round(toMs(d) / scale / 1000) * 1000));
}

export interface RenderedRules {
  yaml: string;
  changes: string[];
}

/** The chart's rules with time divided by `scale`; every change is listed for the run's output. */
export function renderRules(scale: number, scrapeMs: number): RenderedRules {
  const doc = parse(readFileSync(RULES_FILE, 'utf8')) as {
    groups: Array<{ name: string; rules: Rule[] }>;
  };
  const changes: string[] = [];
  for (const g of doc.groups) {
    for (const r of g.rules) {
      const before = r.expr;
      r.expr = r.expr.replace(
        /\[(\d+(?:ms|s|m|h|d))\]/g,
        (_, d: string) => `[${scaleDuration(d, scale, scrapeMs * 4)}]`,
      );
      if (r.alert === 'HubBacklogStuck') {
        r.expr = r.expr.replace(
          /(hub_reconcile_oldest_due_age_seconds\)\s*>\s*)(\d+)/,
          (_, head: string, n: string) => `${head}${Math.round(Number(n) / scale)}`,
        );
      }
      if (r.expr !== before) {
        changes.push(
          `${r.alert}: ${before.replace(/\s+/g, ' ').trim()}  →  ${r.expr.replace(/\s+/g, ' ').trim()}`,
        );
      }
      if (r.for) {
        const f = scaleDuration(r.for, scale, scrapeMs);
        changes.push(`${r.alert}: for ${r.for} → ${f}`);
        r.for = f;
      }
    }
  }
  return { yaml: stringify(doc), changes };
}

export interface AlertSample {
  at: number;
  firing: Array<{ name: string; labels: Record<string, string> }>;
}

export interface PrometheusRun {
  url: string;
  rules: RenderedRules;
  /** Firing alerts polled every second since start. */
  samples: AlertSample[];
  /** [from, to] periods each alert (by name, and these labels when given) was firing. */
  periods(name: string, labels?: Record<string, string>): Array<{ from: number; to?: number }>;
  query(q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  stop(): Promise<void>;
}

export async function startPrometheus(
  s: ChaosStack,
  o: { scale: number; scrapeMs: number; log: (l: string) => void },
): Promise<PrometheusRun> {
  const dir = path.join(s.runDir, 'prometheus');
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  const rules = renderRules(o.scale, o.scrapeMs);
  writeFileSync(path.join(dir, 'alerts.yaml'), rules.yaml);
  const targetsFile = path.join(dir, 'targets.json');
  const writeTargets = () => {
    const groups = s.live().map((p) => ({
      targets: [`${p.host}:${p.port}`],
      labels: { job: p.deployment, pod: p.name, namespace: 'chaos' },
    }));
    // Written aside and renamed: Prometheus never reads a half-written file.
    writeFileSync(`${targetsFile}.tmp`, JSON.stringify(groups));
    renameSync(`${targetsFile}.tmp`, targetsFile);
  };
  writeTargets();
  s.onPodsChanged(writeTargets);
  const interval = fromMs(o.scrapeMs);
  writeFileSync(
    path.join(dir, 'prometheus.yml'),
    stringify({
      global: {
        scrape_interval: interval,
        evaluation_interval: interval,
        scrape_timeout: fromMs(Math.max(500, o.scrapeMs - 200)),
      },
      rule_files: [path.join(dir, 'alerts.yaml')],
      scrape_configs: [
        { job_name: 'hub', file_sd_configs: [{ files: [targetsFile], refresh_interval: '1s' }] },
      ],
    }),
  );
  const port = await freePort();
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1d',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const reaper = () => child.kill('SIGKILL');
  process.once('exit', reaper);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`prometheus did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  o.log(
    `prometheus :${port} scraping every ${interval}; rules rendered with time ÷${o.scale}:\n${rules.changes.map((c) => `    ${c}`).join('\n')}`,
  );

  const samples: AlertSample[] = [];
  let polling = true;
  const poll = (async () => {
    while (polling) {
      try {
        const res = await fetch(`${url}/api/v1/alerts`, { signal: AbortSignal.timeout(3_000) });
        const body = (await res.json()) as {
          data: { alerts: Array<{ labels: Record<string, string>; state: string }> };
        };
        samples.push({
          at: Date.now(),
          firing: body.data.alerts
            .filter((a) => a.state === 'firing')
            .map((a) => ({ name: a.labels.alertname ?? '?', labels: a.labels })),
        });
      } catch {
        // Prometheus busy for a moment; the next poll tells.
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
  })();

  return {
    url,
    rules,
    samples,
    periods(name, labels = {}) {
      const out: Array<{ from: number; to?: number }> = [];
      let open: { from: number; to?: number } | undefined;
      const matches = (a: { name: string; labels: Record<string, string> }) =>
        a.name === name && Object.entries(labels).every(([k, v]) => a.labels[k] === v);
      for (const sm of samples) {
        const firing = sm.firing.some(matches);
        if (firing && !open) out.push((open = { from: sm.at }));
        if (!firing && open) {
          open.to = sm.at;
          open = undefined;
        }
      }
      return out;
    },
    async query(q) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(q)}`);
      const body = (await res.json()) as {
        data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
      };
      return body.data.result;
    },
    async stop() {
      polling = false;
      await poll;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(t);
      process.removeListener('exit', reaper);
    },
  };
}
