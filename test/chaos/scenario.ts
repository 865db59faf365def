// One chaos run from start to end: the stack and Prometheus up, traffic, a warm-up that measures the
// normal latency of webhooks, opens and connects, the seeded faults, a settle and drain, the 1C
// export of the run's hour, then the invariants. Used by `npm run chaos` (run.ts) and the short
// pass of `npm test` (chaos.test.ts).
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { PERIODIC_RUNS } from '../../services/core/engine/periodic.js';
import { ONEC_EXPORT_JOB } from '../../services/domains/kitchen/onec-export.js';
import {
  describePlan,
  FaultRunner,
  planFaults,
  type FaultKind,
  type FaultRecord,
  type Probes,
} from './faults.js';
import { checkInvariants, table, type Check, type ResourceSample } from './invariants.js';
import { startPrometheus, type PrometheusRun } from './prometheus.js';
import { createRng } from './rng.js';
import { startChaosStack, type ChaosStack } from './stack.js';
import { Traffic } from './traffic.js';

export interface ChaosOptions {
  seed: number;
  /** Length of the fault phase. */
  faultMs: number;
  warmupMs: number;
  runDir: string;
  kinds?: readonly FaultKind[];
  /** Seeded pause between two faults of the main track. */
  gapMs?: [number, number];
  smartHomeTenants?: number;
  kitchenTenants?: number;
  /** Durations of the rendered alert rules are the chart's divided by this. */
  timeScale?: number;
  log?: (line: string) => void;
}

export interface ChaosResult {
  checks: Check[];
  faults: FaultRecord[];
  table: string;
  /** Every check held; those skipped (a fault this machine cannot inject) are listed in `skipped`. */
  ok: boolean;
  /** `kind: reason` of each fault kind that could not be injected. */
  skipped: string[];
  seconds: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** A connect or disconnect (whichever the subscription allows) followed to its end; undefined unless it completed. */
async function changeProbe(
  traffic: Traffic,
  tenant: string,
  service: string,
): Promise<number | undefined> {
  const start = Date.now();
  const sub = await traffic.call('GET', '/v1/smart-home/subscriptions', {
    token: traffic.token(tenant),
  });
  const state =
    (sub?.body.subscriptions as Array<{ service: string; state: string }> | undefined)?.find(
      (x) => x.service === service,
    )?.state ?? 'none';
  if (state === 'connecting' || state === 'disconnecting') return undefined;
  const kind = state === 'connected' ? 'disconnect' : 'connect';
  const a = await traffic.change(tenant, service, kind);
  if (a?.status !== 202) return undefined;
  const want = kind === 'connect' ? 'connected' : 'disconnected';
  while (Date.now() - start < 20_000) {
    await sleep(100);
    const now = await traffic.call('GET', '/v1/smart-home/subscriptions', {
      token: traffic.token(tenant),
    });
    const st = (
      now?.body.subscriptions as Array<{ service: string; state: string }> | undefined
    )?.find((x) => x.service === service)?.state;
    if (st === want) return Date.now() - start;
    if (st !== 'connecting' && st !== 'disconnecting' && st !== undefined) return undefined;
  }
  return undefined;
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  mkdirSync(o.runDir, { recursive: true });
  const logFile = path.join(o.runDir, 'chaos.log');
  const print = o.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const log = (l: string) => {
    appendFileSync(logFile, `[${new Date().toISOString().slice(11, 19)}] ${l}\n`);
    print(l);
  };
  const t0 = Date.now();
  const scale = o.timeScale ?? 60;
  const schedule = {
    seed: o.seed,
    durationMs: o.faultMs,
    gapMs: o.gapMs ?? [2_000, 5_000],
    allioOutageMs: 35_000,
    partnerSilenceMs: 25_000,
    kinds: o.kinds,
  };
  const plan = planFaults(schedule);
  log(
    `chaos run, CHAOS_SEED=${o.seed}; fault plan (offsets from the end of the warm-up; a fault starts when the one before it has ended):\n${describePlan(plan)}`,
  );

  const stack: ChaosStack = await startChaosStack({
    runDir: o.runDir,
    log,
    isolation: plan.some((p) => p.kind === 'partition'),
  });
  let prom: PrometheusRun | undefined;
  let traffic: Traffic | undefined;
  let sampler: NodeJS.Timeout | undefined;
  try {
    prom = await startPrometheus(stack, { scale, scrapeMs: 1_000, log });
    traffic = new Traffic(stack, createRng(o.seed ^ 0x7a11c), {
      smartHomeTenants: o.smartHomeTenants ?? 10,
      kitchenTenants: o.kitchenTenants ?? 4,
      thinkMs: 1_500,
      webhooksPerSecond: 1,
      idRange: 150,
    });
    const resources: ResourceSample[] = [];
    sampler = setInterval(() => {
      for (const p of stack.live()) {
        if (!p.paused) {
          resources.push({ at: Date.now(), pod: p.name, rss: p.rss(), sockets: p.sockets() });
        }
      }
    }, 5_000);

    // Probe tenants: one with the intercom connected (opens), one whose barrier goes back and forth.
    const t = traffic;
    await t.start();
    const probeIt = stack.integrations[0];
    if (!probeIt) throw new Error('no integration');
    let probeId = 10_000;
    const probeOpen = 'probe-open';
    const probeChange = 'probe-change';
    await t.addTenant(probeOpen);
    await t.addTenant(probeChange);
    if ((await changeProbe(t, probeOpen, 'intercom')) === undefined) {
      throw new Error('the probe tenant could not connect its intercom');
    }
    const probes: Probes = {
      baseline: { webhook: 0, open: 0, connect: 0 },
      async webhook() {
        const start = Date.now();
        const rec = await t.sendWebhook(probeIt, 'RESERVE_MOD', [probeId++], 0);
        return rec.acceptedAt ? rec.acceptedAt - start : undefined;
      },
      async open() {
        const start = Date.now();
        const a = await t.call('POST', '/v1/smart-home/subscriptions/intercom/open', {
          token: t.token(probeOpen),
          route: 'probe open',
        });
        if (a?.status !== 202) return undefined;
        while (Date.now() - start < 10_000) {
          await sleep(50);
          const r = await t.call('GET', `/v1/smart-home/commands/${String(a.body.commandId)}`, {
            token: t.token(probeOpen),
            route: 'probe command',
          });
          if (r?.status === 200 && r.body.status !== 'pending') {
            return r.body.status === 'opened' ? Date.now() - start : undefined;
          }
        }
        return undefined;
      },
      connect: () => changeProbe(t, probeChange, 'barrier'),
    };

    await sleep(o.warmupMs);
    await Promise.all(
      (['webhook', 'open', 'connect'] as const).map(async (k) => {
        const xs: number[] = [];
        for (let n = 0; n < 3; n++) {
          const v = await probes[k]();
          if (v !== undefined) xs.push(v);
        }
        probes.baseline[k] = median(xs) || 1_000;
      }),
    );
    const warmupEndedAt = Date.now();
    log(
      `warm-up done at +${((warmupEndedAt - t0) / 1000).toFixed(0)} s; normal latency: webhook ${probes.baseline.webhook} ms, open ${probes.baseline.open} ms, connect/disconnect ${probes.baseline.connect} ms`,
    );

    const runner = new FaultRunner(stack, t, probes, schedule, log);
    await runner.run(plan, warmupEndedAt);

    // Alerts resolve after their window and `for` (the longest rendered: 15 m ÷ scale + for).
    const settleMs = Math.max(
      10_000,
      Math.round((15 * 60_000) / scale) + Math.round((15 * 60_000) / scale),
    );
    log(
      `faults done at +${((Date.now() - t0) / 1000).toFixed(0)} s; traffic goes on for ${settleMs / 1000} s while alerts resolve, then drains`,
    );
    await sleep(settleMs);
    await t.stop();

    // The hour's 1C export, as the scheduler would start it once the hour is over.
    const hour = new Date().toISOString().slice(0, 13);
    const prev = new Date(Date.now() - 3_600_000).toISOString().slice(0, 13);
    await stack.db.raw(
      `insert into ${PERIODIC_RUNS} (name, period_key) values (?, ?), (?, ?) on conflict (name, period_key) do nothing`,
      [ONEC_EXPORT_JOB, hour, ONEC_EXPORT_JOB, prev],
    );
    const drained = await drain(stack, 90_000);
    log(
      `drained in ${(drained.ms / 1000).toFixed(1)} s${drained.left ? `; still open: ${drained.left}` : ''}`,
    );
    t.closeSockets();

    const checks = await checkInvariants({
      stack,
      traffic: t.stats,
      faults: runner.records,
      prometheus: prom,
      resources,
      warmupEndedAt,
      changeBudgetMs: 1_500 * (1 + 2 + 4) + 30_000 + 10_000,
      openBudgetMs: 4_000 + 20_000,
      alertResolveMs: settleMs,
    });
    const names = [...new Set(prom.samples.flatMap((x) => x.firing.map((a) => a.name)))].sort();
    log(
      `alerts that fired (offsets from the end of the warm-up): ${
        names
          .map(
            (n) =>
              `${n} ${prom
                ?.periods(n)
                .map(
                  (x) =>
                    `${((x.from - warmupEndedAt) / 1000).toFixed(0)}..${x.to ? ((x.to - warmupEndedAt) / 1000).toFixed(0) : 'end'} s`,
                )
                .join(', ')}`,
          )
          .join('; ') || 'none'
      }`,
    );
    const span = Math.ceil((Date.now() - warmupEndedAt) / 1000);
    const peaks = await Promise.all(
      ['hub_reconcile_oldest_due_age_seconds', 'hub_reconcile_backlog'].map(async (m) => {
        const r = await prom
          ?.query(`max by (reconciler) (max_over_time(${m}[${span}s]))`)
          .catch(() => []);
        return `${m}: ${(r ?? []).map((x) => `${x.metric.reconciler}=${Number(x.value[1]).toFixed(0)}`).join(' ')}`;
      }),
    );
    log(`peaks during the faults: ${peaks.join('; ')}`);
    const refusals = [...t.stats.refusals]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([k, v]) => `${k}: ${v}`)
      .join('; ');
    log(`client-side refusals and retries (by route and status): ${refusals || 'none'}`);
    const seconds = (Date.now() - t0) / 1000;
    const text = table(checks);
    const skipped = [
      ...new Map(
        runner.records
          .filter((f) => f.skipped)
          .map((f) => [f.kind, `${f.kind}: ${f.skipped ?? ''}`]),
      ).values(),
    ];
    return {
      checks,
      faults: runner.records,
      table: text,
      ok: checks.every((c) => c.ok),
      skipped,
      seconds,
    };
  } finally {
    if (sampler) clearInterval(sampler);
    traffic?.closeSockets();
    await prom?.stop().catch(() => undefined);
    await stack.close();
  }
}

/** Waits until no ALLIO webhook/task, smart-home request or 1C run is new or in progress. */
async function drain(s: ChaosStack, timeoutMs: number): Promise<{ ms: number; left: string }> {
  const start = Date.now();
  let left = '';
  while (Date.now() - start < timeoutMs) {
    const { rows } = await s.db
      .raw<{ rows: Array<{ t: string; n: string }> }>(
        `
      select 'allio_webhook' as t, count(*) as n from allio_webhook where status in (0, 1)
      union all select 'allio_tasks', count(*) from allio_tasks where status in (0, 1)
      union all select 'smart_home_requests', count(*) from smart_home_requests where state in ('ready_for_request', 'requested')
      union all select 'periodic_runs', count(*) from ${PERIODIC_RUNS} where status in (0, 1) and name = '${ONEC_EXPORT_JOB}'`,
      )
      .catch(() => ({ rows: [{ t: 'db', n: '1' }] }));
    const open = rows.filter((r) => Number(r.n) > 0);
    left = open.map((r) => `${r.t}=${r.n}`).join(' ');
    if (open.length === 0) return { ms: Date.now() - start, left: '' };
    await sleep(500);
  }
  return { ms: Date.now() - start, left };
}
