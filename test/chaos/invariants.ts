// What must hold at the end of a chaos run, checked against the database, the simulators' own
// records and what the clients saw; printed as a table, any failure fails the run.
import { makeDealCard, makeReservation } from '../../services/simulators/allio/data.js';
import type { FaultRecord } from './faults.js';
import { isolatedWrites, staleWrite } from './fencing.js';
import type { PrometheusRun } from './prometheus.js';
import type { ChaosStack, Pod } from './stack.js';
import type { TrafficStats } from './traffic.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** A few examples of what broke it. */
  examples?: string[];
  /** Not checked: the fault it is about could not be injected here; `detail` says why. */
  skipped?: boolean;
}

export interface ResourceSample {
  at: number;
  pod: string;
  rss: number;
  sockets: number;
}

export interface InvariantInput {
  stack: ChaosStack;
  traffic: TrafficStats;
  faults: FaultRecord[];
  prometheus?: PrometheusRun;
  resources: ResourceSample[];
  /** From the end of warm-up. */
  warmupEndedAt: number;
  /** Retry budget of a connect/disconnect (all its sends and waits), with room for a bridge's lease. */
  changeBudgetMs: number;
  /** An open's TTL plus the time to learn the result. */
  openBudgetMs: number;
  /** Seconds an alert may take after its fault ended to resolve (window + for of the rendered rule). */
  alertResolveMs: number;
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
/** Wall-clock time, to match an example with the fault log. */
const at = (ms: number | Date) => new Date(ms).toISOString().slice(11, 19);

function check(name: string, problems: string[], okDetail: string, failDetail?: string): Check {
  return {
    name,
    ok: problems.length === 0,
    detail: problems.length === 0 ? okDetail : (failDetail ?? `${problems.length} violation(s)`),
    examples: problems.slice(0, 5),
  };
}

async function allioChecks(i: InvariantInput): Promise<Check[]> {
  const { db, integrations, sims } = i.stack;
  const out: Check[] = [];
  // Webhooks the hub accepted (stored) are the truth; some the clients saw fail may have been stored.
  const hooks = await db('allio_webhook').select(
    'id',
    'integration_id',
    'command',
    'external_ids_array',
    'created_at',
    'status',
  );
  const latest = new Map<string, Date>();
  for (const h of hooks as Array<{
    integration_id: string;
    command: string;
    external_ids_array: string;
    created_at: Date;
  }>) {
    const entity = h.command.startsWith('RESERVE')
      ? 'reserve'
      : h.command.startsWith('DEALCARD')
        ? 'dealcard'
        : undefined;
    if (!entity) continue;
    for (const id of JSON.parse(h.external_ids_array) as number[]) {
      const k = `${h.integration_id}/${entity}/${id}`;
      const prev = latest.get(k);
      if (!prev || prev < h.created_at) latest.set(k, h.created_at);
    }
  }
  const problems: string[] = [];
  const rows = new Map<
    string,
    { synced_at: Date; custom_fields: Record<string, unknown>; n: number }
  >();
  for (const [table, entity] of [
    ['crm_reservations', 'reserve'],
    ['crm_deals', 'dealcard'],
  ] as const) {
    const rs = await db(table).select(
      'integration_id',
      'external_id',
      'synced_at',
      'custom_fields',
    );
    for (const r of rs as Array<{
      integration_id: string;
      external_id: string;
      synced_at: Date;
      custom_fields: Record<string, unknown>;
    }>) {
      const k = `${r.integration_id}/${entity}/${r.external_id}`;
      const prev = rows.get(k);
      rows.set(k, {
        synced_at: r.synced_at,
        custom_fields: r.custom_fields,
        n: (prev?.n ?? 0) + 1,
      });
    }
  }
  let stale = 0;
  let wrong = 0;
  for (const [k, at] of latest) {
    const row = rows.get(k);
    if (!row) {
      problems.push(`${k}: missing from the CRM`);
      continue;
    }
    if (row.n > 1) problems.push(`${k}: ${row.n} rows`);
    if (row.synced_at < at) {
      stale++;
      problems.push(
        `${k}: synced ${row.synced_at.toISOString()} before its last webhook ${at.toISOString()}`,
      );
    }
    const [, entity, id] = k.split('/');
    const truth = entity === 'reserve' ? makeReservation(Number(id)) : makeDealCard(Number(id));
    if (row.custom_fields.status !== truth.status || row.custom_fields.comment !== truth.comment) {
      wrong++;
      problems.push(`${k}: CRM data differ from ALLIO's`);
    }
  }
  const sent = i.traffic.webhooks.length;
  const accepted = i.traffic.webhooks.filter((w) => w.acceptedAt).length;
  out.push(
    check(
      'ALLIO: every id in the CRM exactly once, latest data',
      problems,
      `${latest.size} ids of ${hooks.length} stored webhooks (${accepted}/${sent} sends answered 200), ${integrations.length} integrations`,
      `${problems.length} of ${latest.size} ids wrong (${stale} stale, ${wrong} data differ)`,
    ),
  );

  const open = await db.raw<{ rows: Array<{ t: string; status: number; n: string }> }>(`
    select 'allio_webhook' as t, status, count(*) as n from allio_webhook group by status
    union all select 'allio_tasks', status, count(*) from allio_tasks group by status`);
  const stuck = open.rows.filter((r) => r.status === 0 || r.status === 1);
  const failed = open.rows.filter((r) => r.status === 3);
  const errors = failed.length
    ? await db('allio_tasks').where({ status: 3 }).limit(3).select('id', 'last_error')
    : [];
  out.push(
    check(
      'ALLIO: no webhook or task left new, in progress or failed',
      [
        ...stuck.map((r) => `${r.t}: ${r.n} with status ${r.status}`),
        ...failed.map((r) => `${r.t}: ${r.n} failed`),
        ...errors.map((e: { id: string; last_error: string }) => `task ${e.id}: ${e.last_error}`),
      ],
      open.rows.map((r) => `${r.t}[${r.status}]=${r.n}`).join(' '),
    ),
  );

  const st = await sims.allio.stats();
  // The simulator counts every caller as the hub's one egress address (allio-thread.ts); pods in
  // network namespaces call it from addresses of their own.
  const sources = Object.entries(st.byIp)
    .map(([ip, x]) => `${ip} ${x.requests}`)
    .join(', ');
  out.push(
    check(
      'ALLIO: 0 requests over the quota (3rd in a rolling second)',
      st.violations > 0
        ? [
            `${st.violations} request(s) answered 429 by the simulator; most in one window: ${st.maxInWindow + (st.violations > 0 ? 1 : 0)}; by source: ${sources}`,
          ]
        : [],
      `${st.requests} requests (${sources}; counted as one egress), ${st.violations} over quota, most in a window ${st.maxInWindow}`,
    ),
  );
  return out;
}

async function smartHomeChecks(i: InvariantInput): Promise<Check[]> {
  const { db } = i.stack;
  const out: Check[] = [];
  const reqs = await db('smart_home_requests').select(
    'request_uuid',
    'tenant_id',
    'kind',
    'state',
    'created_at',
    'completed_at',
    'attempts',
    'subscription_id',
  );
  const problems: string[] = [];
  let longest = 0;
  const byState = new Map<string, number>();
  for (const r of reqs as Array<{
    request_uuid: string;
    tenant_id: string;
    kind: string;
    state: string;
    created_at: Date;
    completed_at: Date | null;
    attempts: number;
  }>) {
    byState.set(`${r.kind}:${r.state}`, (byState.get(`${r.kind}:${r.state}`) ?? 0) + 1);
    if (r.state !== 'complete' && r.state !== 'failed') {
      problems.push(
        `${r.kind} ${r.request_uuid} of ${r.tenant_id} still ${r.state} (${r.attempts} sends)`,
      );
      continue;
    }
    const took = (r.completed_at?.getTime() ?? 0) - r.created_at.getTime();
    longest = Math.max(longest, took);
    if (took > i.changeBudgetMs) {
      problems.push(
        `${r.kind} of ${r.tenant_id} at ${at(r.created_at)} took ${fmt(took)} (budget ${fmt(i.changeBudgetMs)})`,
      );
    }
  }
  out.push(
    check(
      'smart home: every connect/disconnect complete or failed within its retry budget',
      problems,
      `${reqs.length} requests (${[...byState].map(([k, v]) => `${k}=${v}`).join(' ')}), longest ${fmt(longest)}`,
    ),
  );

  const openProblems: string[] = [];
  const results = new Map<string, number>();
  for (const o of i.traffic.opens) {
    results.set(o.result ?? 'none', (results.get(o.result ?? 'none') ?? 0) + 1);
    if (!o.result || !['opened', 'failed', 'timeout'].includes(o.result)) {
      openProblems.push(
        `open ${o.commandId} of ${o.tenant} at ${at(o.sentAt)}: no result the tenant could read (${o.result ?? 'no answer'})`,
      );
    } else if ((o.endedAt ?? 0) - o.sentAt > i.openBudgetMs) {
      openProblems.push(
        `open ${o.commandId} at ${at(o.sentAt)}: result (${o.result}) after ${fmt((o.endedAt ?? 0) - o.sentAt)}`,
      );
    }
  }
  out.push(
    check(
      'smart home: every open ends opened, failed or timeout',
      openProblems,
      `${i.traffic.opens.length} opens: ${[...results].map(([k, v]) => `${k}=${v}`).join(' ')}`,
    ),
  );

  // A socket that stayed subscribed from the action until a moment after its result must have seen it.
  const socketProblems: string[] = [];
  let expected = 0;
  const coveredBy = (tenant: string, from: number, to: number) =>
    (i.traffic.sockets.get(tenant)?.up ?? []).some(
      (p) => p.from <= from && (p.to ?? Infinity) >= to,
    );
  for (const o of i.traffic.opens) {
    if (!o.result || !o.endedAt || !coveredBy(o.tenant, o.sentAt, o.endedAt + 2_000)) continue;
    expected++;
    const ev = i.traffic.sockets
      .get(o.tenant)
      ?.events.some((e) => e.event.type === 'command.result' && e.event.commandId === o.commandId);
    if (!ev) {
      socketProblems.push(
        `${o.tenant}: no command.result for the open at ${at(o.sentAt)} (${o.result} at ${at(o.endedAt)}, learnt via ${o.via})`,
      );
    }
  }
  const subsById = new Map(
    (await db('smart_home_subscriptions').select('id', 'service')).map(
      (s: { id: string; service: string }) => [String(s.id), s.service],
    ),
  );
  for (const r of reqs as Array<{
    request_uuid: string;
    tenant_id: string;
    kind: string;
    state: string;
    created_at: Date;
    completed_at: Date | null;
    subscription_id: string;
  }>) {
    if (
      !r.completed_at ||
      !coveredBy(r.tenant_id, r.created_at.getTime(), r.completed_at.getTime() + 2_000)
    ) {
      continue;
    }
    expected++;
    const want =
      r.kind === 'connect'
        ? r.state === 'complete'
          ? 'connected'
          : 'failed'
        : r.state === 'complete'
          ? 'disconnected'
          : 'connected';
    const service = subsById.get(String(r.subscription_id));
    const ev = i.traffic.sockets.get(r.tenant_id)?.events.some((e) => {
      const sub = e.event.subscription as { state?: string; service?: string } | undefined;
      return (
        e.event.type === 'subscription.changed' &&
        sub?.state === want &&
        sub.service === service &&
        e.at >= r.created_at.getTime() - 1_000
      );
    });
    if (!ev) {
      socketProblems.push(
        `${r.tenant_id}: no subscription.changed to ${want} for the ${r.kind} of ${at(r.created_at)} (ended ${at(r.completed_at)})`,
      );
    }
  }
  out.push(
    check(
      'smart home: every subscribed tenant socket sees each result',
      socketProblems,
      `${expected} results expected on sockets that stayed up, all seen`,
    ),
  );
  return out;
}

async function kitchenChecks(i: InvariantInput): Promise<Check[]> {
  const { db, sims } = i.stack;
  const out: Check[] = [];
  const orders = await db('kitchen_orders').select('id', 'state', 'total_minor', 'tenant_id');
  const charges = new Map<string, number>();
  for (const c of sims.gateway.charges) {
    if (c.status === 'approved') charges.set(c.orderId, (charges.get(c.orderId) ?? 0) + 1);
  }
  const refunds = new Map<string, number>();
  for (const r of sims.gateway.refunds) {
    const c = sims.gateway.charges.find((x) => x.paymentId === r.paymentId);
    if (c) refunds.set(c.orderId, (refunds.get(c.orderId) ?? 0) + r.amount);
  }
  const problems: string[] = [];
  const byState = new Map<string, number>();
  const failCooking = new Set(i.traffic.orders.filter((o) => o.failCooking).map((o) => o.orderId));
  for (const o of orders as Array<{ id: string; state: string; total_minor: string }>) {
    byState.set(o.state, (byState.get(o.state) ?? 0) + 1);
    const n = charges.get(o.id) ?? 0;
    if (n > 1) problems.push(`order ${o.id} charged ${n} times`);
    if (n === 0) {
      if (!['awaiting_payment', 'payment_declined'].includes(o.state)) {
        problems.push(`order ${o.id} ${o.state} without a charge`);
      }
      continue;
    }
    if (o.state !== 'produced' && o.state !== 'refunded') {
      problems.push(`paid order ${o.id} ended ${o.state}`);
    }
    if (o.state === 'refunded' && (refunds.get(o.id) ?? 0) !== Number(o.total_minor)) {
      problems.push(`order ${o.id} refunded ${refunds.get(o.id) ?? 0} of ${o.total_minor}`);
    }
    if (o.state === 'produced' && refunds.has(o.id)) {
      problems.push(`produced order ${o.id} was also refunded`);
    }
    if (failCooking.has(o.id) && o.state === 'produced') {
      problems.push(`order ${o.id} produced though its cooking failed`);
    }
  }
  out.push(
    check(
      'kitchen: every paid order produced or refunded, never charged twice',
      problems,
      `${orders.length} orders (${[...byState].map(([k, v]) => `${k}=${v}`).join(' ')}), ${sims.gateway.charges.length} charges, ${sims.gateway.refunds.length} refunds`,
    ),
  );

  const docs = sims.onec.documents;
  const seen = new Map<string, number>();
  for (const d of docs) {
    seen.set(`${d.entity}/${d.refKey}`, (seen.get(`${d.entity}/${d.refKey}`) ?? 0) + 1);
  }
  const dup = [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} received ${n} times`);
  const text = docs.map((d) => JSON.stringify(d.body)).join('\n');
  const produced = (orders as Array<{ id: string; state: string }>).filter(
    (o) => o.state === 'produced',
  );
  const missing = produced
    .filter((o) => !text.includes(o.id))
    .map((o) => `produced order ${o.id} in no 1C document`);
  out.push(
    check(
      '1C: each document received once, every produced order exported',
      [...dup, ...missing],
      `${docs.length} documents, ${seen.size} distinct, ${produced.length} produced orders in them`,
    ),
  );
  return out;
}

function podChecks(i: InvariantInput): Check[] {
  const out: Check[] = [];
  const pods = i.stack.pods;
  const unexpected = pods.filter((p) => p.exit?.end === 'unexpected');
  const killed = pods.filter((p) => p.exit?.end === 'killed').length;
  const stopped = pods.filter((p) => p.exit?.end === 'stopped');
  const badStops = stopped.filter((p) => p.exit?.code !== 0);
  const taken = pods.filter((p) => p.exit?.end === 'port-taken').length;
  out.push(
    check(
      'processes: none exits but the ones the harness killed or stopped (stops exit 0)',
      [
        ...unexpected.map(
          (p) => `${p.name} exited by itself (${String(p.exit?.code)}): ${lastLines(p)}`,
        ),
        ...badStops.map((p) => `${p.name} stopped with ${String(p.exit?.code)}: ${lastLines(p)}`),
      ],
      `${pods.length} pods started, ${killed} killed -9, ${stopped.length} stopped by SIGTERM (exit 0)${taken ? `, ${taken} restarted on another port (theirs was taken before they listened)` : ''}`,
    ),
  );

  // Growth of each pod that lived 40 s past the warm-up: its last samples against its first after warm-up.
  const problems: string[] = [];
  let compared = 0;
  let worstRss = 0;
  let worstSockets = 0;
  for (const p of pods) {
    // A pod's own warm-up: its first minute (pools filled, code compiled, first bursts served).
    const mine = i.resources.filter(
      (r) => r.pod === p.name && r.at >= Math.max(i.warmupEndedAt, p.startedAt + 60_000),
    );
    if (mine.length < 4 || (mine.at(-1)?.at ?? 0) - (mine[0]?.at ?? 0) < 40_000) continue;
    compared++;
    const first = mine.slice(0, 2);
    const last = mine.slice(-2);
    const rss0 = Math.min(...first.map((r) => r.rss));
    const rss1 = Math.min(...last.map((r) => r.rss));
    const s0 = Math.max(...first.map((r) => r.sockets));
    const s1 = Math.min(...last.map((r) => r.sockets));
    worstRss = Math.max(worstRss, rss1 - rss0);
    worstSockets = Math.max(worstSockets, s1 - s0);
    // Bounds: RSS may grow 60 MiB (heap settling, JIT) and sockets 15 (pools refilled after a fault).
    if (rss1 - rss0 > 60 * 1024 * 1024) problems.push(`${p.name}: RSS ${mb(rss0)} → ${mb(rss1)}`);
    // Tenant WebSockets move between api pods as pods die and clients reconnect: an api pod may hold them all.
    const allowance = 15 + (p.deployment === 'api' ? i.traffic.sockets.size : 0);
    if (s1 - s0 > allowance) problems.push(`${p.name}: sockets ${s0} → ${s1}`);
  }
  out.push(
    check(
      'processes: RSS and open sockets flat after warm-up (RSS +60 MiB, sockets +15, api + tenants)',
      problems,
      compared === 0
        ? 'no pod lived long enough after warm-up to compare'
        : `${compared} pods compared; worst growth RSS ${mb(worstRss)}, sockets ${worstSockets}`,
    ),
  );
  return out;
}

const mb = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MiB`;
const lastLines = (p: Pod) => p.tail().trim().split('\n').slice(-2).join(' | ').slice(0, 300);

function faultChecks(i: InvariantInput): Check[] {
  const takeovers = i.faults.flatMap((f) => f.takeovers.map((t) => ({ f, t })));
  const slow = takeovers
    .filter(({ t }) => t.ms === undefined || t.ms > t.limitMs)
    .map(
      ({ f, t }) =>
        `${f.kind} ${t.pod}: ${t.rows} row(s) ${t.ms === undefined ? 'never taken over' : `taken over after ${fmt(t.ms)}`} (limit ${fmt(t.limitMs)})`,
    );
  const withRows = takeovers.filter(({ t }) => t.rows > 0);
  const worst = Math.max(0, ...withRows.map(({ t }) => t.ms ?? Infinity));
  const recoveries = i.faults.flatMap((f) => f.recoveries.map((r) => ({ f, r })));
  const lateRec = recoveries
    .filter(({ r }) => r.ms === undefined || r.ms > 5_000)
    .map(
      ({ f, r }) =>
        `${f.kind}: ${r.probe} ${r.ms === undefined ? 'not at normal latency within 20 s' : `normal only after ${fmt(r.ms)}`}`,
    );
  const worstRec = Math.max(0, ...recoveries.map(({ r }) => r.ms ?? Infinity));
  const errors = i.faults.filter((f) => f.error).map((f) => `${f.kind}: ${f.error}`);
  const skipped = i.faults.filter((f) => f.skipped);
  return [
    check(
      'leases: work of a dead, paused or cut-off pod taken over within lease + 5 s',
      slow,
      `${takeovers.length} kills/pauses/partitions of workers, ${withRows.length} held work; slowest ${withRows.length ? fmt(worst) : '-'}`,
    ),
    check(
      'recovery: webhooks, opens, connects at normal latency within 5 s of a server coming back',
      lateRec,
      `${recoveries.length} probes after ${i.faults.filter((f) => f.recoveries.length).length} server faults; slowest ${recoveries.length ? fmt(worstRec) : '-'}`,
    ),
    check(
      'faults: every scheduled fault injected',
      errors,
      `${i.faults.length - skipped.length} faults injected${skipped.length ? `, ${skipped.length} skipped (${[...new Set(skipped.map((f) => f.kind))].join(', ')})` : ''}`,
    ),
  ];
}

/**
 * A worker cut off by a partition: it wrote nothing the lease contract forbids (fencing.ts), and
 * once its link was back it answered /readyz and claimed work again, without having exited.
 */
async function partitionChecks(i: InvariantInput): Promise<Check[]> {
  const faults = i.faults.filter((f) => f.kind === 'partition');
  if (faults.length === 0) return [];
  const name =
    'partition: a cut-off worker writes nothing stale, then is ready and claims work again without exiting';
  const skipped = faults.find((f) => f.skipped);
  if (skipped) {
    return [{ name, ok: true, skipped: true, detail: `SKIPPED: ${skipped.skipped ?? ''}` }];
  }
  const problems: string[] = [];
  const seen: string[] = [];
  for (const f of faults) {
    const o = f.partition;
    if (!o) continue;
    const writes = await isolatedWrites(i.stack.db, o.address, new Date(f.startedAt));
    const afterCut = writes.filter((w) => o.cutAt !== undefined && w.at.getTime() >= o.cutAt);
    problems.push(
      ...writes
        .map((w) => staleWrite(w, o.pod))
        .filter((x): x is string => x !== undefined)
        .map((x) => `${o.pod}: ${x}`),
    );
    if (o.exited) problems.push(`${o.pod} exited (${o.exited})`);
    else if (o.restoredAt !== undefined) {
      if (o.readyMs === undefined) {
        problems.push(`${o.pod}: not ready within ${fmt(o.limitMs)} of its link coming back`);
      }
      if (o.claimMs === undefined) {
        problems.push(`${o.pod}: claimed no work within ${fmt(o.limitMs)} of its link coming back`);
      }
    }
    seen.push(
      `${o.pod} cut ${fmt(o.cutMs)}: ${writes.length} row writes (${afterCut.length} after the cut), ready ${o.readyMs === undefined ? '-' : fmt(o.readyMs)} / claiming ${o.claimMs === undefined ? '-' : fmt(o.claimMs)} after, ${o.leaseLost ?? '?'} refused for a lost lease`,
    );
  }
  return [check(name, problems, seen.join('; ') || 'no partition ran')];
}

/** The alerts the runbook promises for the faults injected: they fire during the fault and resolve after. */
export const EXPECTED_ALERTS: Array<{
  fault: string;
  alert: string;
  labels?: Record<string, string>;
}> = [
  { fault: 'allio-outage', alert: 'HubBacklogStuck', labels: { reconciler: 'allio-sync' } },
  { fault: 'allio-outage', alert: 'HubPartnerErrors' },
  { fault: 'partner-silence', alert: 'HubSmartHomePartnerSilent' },
  { fault: 'partner-silence', alert: 'HubRetriesExhausted' },
];

function alertChecks(i: InvariantInput): Check[] {
  const p = i.prometheus;
  if (!p) return [];
  const out: Check[] = [];
  const end = Date.now();
  for (const e of EXPECTED_ALERTS) {
    const faults = i.faults.filter((f) => f.kind === e.fault && f.endedAt);
    if (faults.length === 0) continue;
    const periods = p.periods(e.alert, e.labels);
    const problems: string[] = [];
    for (const f of faults) {
      // Firing at some point from the fault's start to 15 s after its end (it may still fire for an earlier one).
      const fired = periods.some(
        (x) => x.from <= (f.endedAt ?? end) + 15_000 && (x.to ?? end) >= f.startedAt,
      );
      if (!fired) {
        problems.push(
          `${e.alert} did not fire for ${e.fault} at ${new Date(f.startedAt).toISOString().slice(11, 19)}`,
        );
      }
    }
    const stillFiring = periods.filter((x) => x.to === undefined);
    if (stillFiring.length > 0) problems.push(`${e.alert} still firing at the end`);
    out.push(
      check(
        `alert ${e.alert} fires for ${e.fault} and resolves`,
        problems,
        `${faults.length} fault(s); fired ${periods.length}× (${periods.map((x) => `${fmt(x.from - (faults[0]?.startedAt ?? 0))}..${x.to ? fmt(x.to - (faults[0]?.startedAt ?? 0)) : 'end'}`).join(', ')} after the first)`,
      ),
    );
  }
  return out;
}

export async function checkInvariants(i: InvariantInput): Promise<Check[]> {
  return [
    ...(await allioChecks(i)),
    ...(await smartHomeChecks(i)),
    ...(await kitchenChecks(i)),
    ...podChecks(i),
    ...faultChecks(i),
    ...(await partitionChecks(i)),
    ...alertChecks(i),
  ];
}

/** The table, as the fuzz suite prints its own. */
export function table(checks: Check[]): string {
  const w = Math.max(...checks.map((c) => c.name.length), 9);
  const lines = [`${'invariant'.padEnd(w)}  result  detail`, `${'-'.repeat(w)}  ------  ------`];
  for (const c of checks) {
    lines.push(
      `${c.name.padEnd(w)}  ${c.skipped ? 'skip  ' : c.ok ? 'ok    ' : 'FAIL  '}  ${c.detail}`,
    );
    if (!c.ok) for (const ex of c.examples ?? []) lines.push(`${''.padEnd(w)}          - ${ex}`);
  }
  return lines.join('\n');
}
