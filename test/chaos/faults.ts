// Faults on a seeded schedule: a crashed pod (kill -9 and its replacement), a rollout (SIGTERM
// rolling restart of every Deployment, one pod at a time each, a new pod up before an old one
// goes), RabbitMQ, Redis and PostgreSQL restarts, PostgreSQL backends killed, a worker paused
// (SIGSTOP) for longer than its lease, a worker cut off from every server by a network partition for
// longer than its lease (netns.ts), ALLIO answering 503 for a while, and smart-home partners gone
// silent. Each fault records when it ran, what it hit, how fast held work was taken over, and how
// fast the hub served at its normal latency again after a server came back.
import { firstClaim, isolatedWrites, workTables } from './fencing.js';
import { createRng, type Rng } from './rng.js';
import {
  DEPLOYMENTS,
  ISOLATABLE,
  LEASE_MS,
  type ChaosStack,
  type DeploymentName,
  type Pod,
} from './stack.js';
import type { Traffic } from './traffic.js';

export const FAULT_KINDS = [
  'crash',
  'pause',
  'partition',
  'rollout',
  'rabbitmq-restart',
  'redis-restart',
  'postgres-restart',
  'postgres-kill-backends',
  'partner-silence',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number] | 'allio-outage';

/** Server faults after which the recovery latency is measured. */
const SERVER_FAULTS = new Set<FaultKind>([
  'rabbitmq-restart',
  'redis-restart',
  'postgres-restart',
  'postgres-kill-backends',
]);

export interface PlannedFault {
  at: number;
  kind: FaultKind;
  /** Seeded choice of the target (pod index, deployment) made when it runs. */
  pick: number;
}

export interface Takeover {
  pod: string;
  rows: number;
  /** Time from the fault until the last held row was claimed by another pod or finished; undefined: not within the wait. */
  ms?: number;
  limitMs: number;
}

export interface Recovery {
  probe: 'webhook' | 'open' | 'connect';
  /** From the server being back to the start of the first probe served at normal latency. */
  ms?: number;
  latencyMs?: number;
}

/** A partition's pod, and how it came back once its link did. */
export interface PartitionOutcome {
  pod: string;
  /** Its address in its namespace: its database connections come from there (fencing.ts). */
  address: string;
  leaseMs: number;
  cutMs: number;
  cutAt?: number;
  restoredAt?: number;
  /** From the link's return to /readyz answering 200; undefined: not within limitMs. */
  readyMs?: number;
  /** From the link's return to its first claim of work; undefined: not within limitMs. */
  claimMs?: number;
  limitMs: number;
  /** Its hub_lease_lost_total after recovery: writes of its own that fencing refused. */
  leaseLost?: number;
  /** How it ended, when it exited before the harness stopped it. */
  exited?: string;
}

export interface FaultRecord {
  kind: FaultKind;
  startedAt: number;
  endedAt?: number;
  target?: string;
  detail?: string;
  error?: string;
  /** Why the fault could not be injected on this machine (it is reported, never taken for a pass). */
  skipped?: string;
  takeovers: Takeover[];
  recoveries: Recovery[];
  partition?: PartitionOutcome;
}

export interface ScheduleOptions {
  seed: number;
  /** Length of the fault phase. */
  durationMs: number;
  /** Pause between two faults of the main track (seeded within). */
  gapMs: [number, number];
  allioOutageMs: number;
  partnerSilenceMs: number;
  /** The kinds of the main track (default: all). */
  kinds?: readonly FaultKind[];
}

/**
 * The schedule: the main track cycles through every kind in a seeded order (one full cycle at
 * least), one after another with seeded gaps; ALLIO outages run beside it (they touch no server the
 * recovery probes use). Times are offsets from the start of the fault phase; a kind's own length is
 * part of the main track's time.
 */
export function planFaults(o: ScheduleOptions): PlannedFault[] {
  const rng = createRng(o.seed);
  const plan: PlannedFault[] = [];
  let t = 2_000;
  const estimate = (k: FaultKind) =>
    k === 'rollout'
      ? 25_000
      : k === 'partner-silence'
        ? o.partnerSilenceMs + 10_000
        : k === 'pause'
          ? 15_000
          : k === 'partition'
            ? 45_000
            : 8_000;
  do {
    const order: FaultKind[] = (o.kinds ?? FAULT_KINDS).filter((k) => k !== 'allio-outage');
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j] as FaultKind, order[i] as FaultKind];
    }
    if (order.length === 0) break;
    for (const kind of order) {
      plan.push({ at: t, kind, pick: rng.int(1_000_000) });
      t += estimate(kind) + o.gapMs[0] + rng.int(o.gapMs[1] - o.gapMs[0]);
    }
  } while (t < o.durationMs);
  if (!o.kinds || o.kinds.includes('allio-outage')) {
    for (let a = 1_000; a < Math.max(o.durationMs, t) - o.allioOutageMs; a += o.allioOutageMs * 4) {
      plan.push({ at: a, kind: 'allio-outage', pick: rng.int(1_000_000) });
    }
  }
  return plan.sort((x, y) => x.at - y.at);
}

export function describePlan(plan: PlannedFault[]): string {
  return plan.map((p) => `  +${(p.at / 1000).toFixed(0).padStart(4)} s  ${p.kind}`).join('\n');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * How long a partitioned pod may take, once its link is back, to be ready and claim work again. A
 * connection kept through the cut resumes at its next TCP retransmission, which after a 34 s cut
 * comes up to 17 s later (the timeout doubles from 200 ms: 25.4 s, then 51 s after the cut); new
 * connections work at once. Measured on 2026-12-01: ready 0.3–2.3 s, first claim 1.3–2.8 s after.
 */
const PARTITION_RECOVERY_MS = 30_000;

export interface Probes {
  webhook(): Promise<number | undefined>;
  open(): Promise<number | undefined>;
  connect(): Promise<number | undefined>;
  baseline: Record<Recovery['probe'], number>;
}

export class FaultRunner {
  readonly records: FaultRecord[] = [];
  private tables: string[] = [];
  private readonly rng: Rng;

  constructor(
    private readonly s: ChaosStack,
    private readonly traffic: Traffic,
    private readonly probes: Probes,
    private readonly o: ScheduleOptions,
    private readonly log: (l: string) => void,
  ) {
    this.rng = createRng(o.seed ^ 0x5eed);
  }

  async run(plan: PlannedFault[], startedAt: number): Promise<void> {
    this.tables = await workTables(this.s.db);
    const side: Promise<void>[] = [];
    for (const p of plan) {
      const wait = startedAt + p.at - Date.now();
      if (wait > 0) await sleep(wait);
      if (p.kind === 'allio-outage') side.push(this.execute(p));
      else await this.execute(p);
    }
    await Promise.all(side);
  }

  private async execute(p: PlannedFault): Promise<void> {
    const rec: FaultRecord = { kind: p.kind, startedAt: Date.now(), takeovers: [], recoveries: [] };
    this.records.push(rec);
    try {
      await this.inject(p, rec);
    } catch (e) {
      rec.error = (e as Error).message.slice(0, 500);
    }
    rec.endedAt = Date.now();
    const took = rec.takeovers
      .map(
        (t) =>
          `${t.pod}: ${t.rows} held row(s) taken over in ${t.ms === undefined ? 'NEVER' : `${(t.ms / 1000).toFixed(1)} s`}`,
      )
      .join('; ');
    const rec2 = rec.recoveries
      .map(
        (r) =>
          `${r.probe} normal after ${r.ms === undefined ? 'NEVER' : `${(r.ms / 1000).toFixed(1)} s`}`,
      )
      .join(', ');
    if (rec.skipped) return this.log(`fault ${rec.kind}: SKIPPED, ${rec.skipped}`);
    this.log(
      `fault ${rec.kind}${rec.target ? ` ${rec.target}` : ''}: ${((rec.endedAt - rec.startedAt) / 1000).toFixed(1)} s${rec.detail ? `, ${rec.detail}` : ''}${took ? `; ${took}` : ''}${rec2 ? `; ${rec2}` : ''}${rec.error ? `; ERROR ${rec.error}` : ''}`,
    );
  }

  private pickPod(p: PlannedFault, deployments: readonly DeploymentName[]): Pod {
    const pods = this.s.live().filter((x) => deployments.includes(x.deployment) && !x.paused);
    const pod = pods[p.pick % pods.length];
    if (!pod) throw new Error(`no live pod of ${deployments.join('/')}`);
    return pod;
  }

  /**
   * A worker that holds claimed work, when one does within 5 s (seeded among them): the fault then
   * strikes mid-task — after the quota slot was granted, mid-request — which is what leases are for.
   */
  private async pickHolder(p: PlannedFault, deployments: readonly DeploymentName[]): Promise<Pod> {
    // ALLIO answering slowly keeps allio-sync pods mid-request, holding their tasks.
    this.s.sims.allio.setLatency(2_500);
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      const { rows } = await this.s.db
        .raw<{ rows: Array<{ owner: string }> }>(
          this.tables
            .map(
              (t) =>
                `select distinct locked_by as owner from "${t}" where status = 1 and locked_until > now()`,
            )
            .join(' union '),
        )
        .catch(() => ({ rows: [] as Array<{ owner: string }> }));
      const owners = new Set(rows.map((r) => String(r.owner).split('/')[0]));
      const holders = this.s
        .live()
        .filter((x) => deployments.includes(x.deployment) && !x.paused && owners.has(x.name));
      const pod = holders[p.pick % Math.max(1, holders.length)];
      if (pod) return pod;
      await sleep(100);
    }
    return this.pickPod(p, deployments);
  }

  private async inject(p: PlannedFault, rec: FaultRecord): Promise<void> {
    try {
      await this.strike(p, rec);
    } finally {
      this.s.sims.allio.setLatency(0);
    }
  }

  private async strike(p: PlannedFault, rec: FaultRecord): Promise<void> {
    switch (p.kind) {
      case 'crash': {
        const pod =
          p.pick % 3 === 0
            ? this.pickPod(p, ['api'])
            : await this.pickHolder(p, ['allio-sync', 'kitchen', 'mq-bridge']);
        rec.target = pod.name;
        const held = pod.deployment === 'api' ? [] : await this.holding(pod.name);
        const at = Date.now();
        const crashed = this.s.crash(pod);
        this.s.sims.allio.setLatency(0);
        const fresh = await crashed;
        rec.detail = `replacement ${fresh.name} up in ${(((fresh.readyAt ?? Date.now()) - fresh.startedAt) / 1000).toFixed(1)} s`;
        if (pod.deployment !== 'api') rec.takeovers.push(await this.takeover(pod, held, at));
        return;
      }
      case 'pause': {
        const pod = await this.pickHolder(p, ['allio-sync', 'kitchen', 'mq-bridge']);
        rec.target = pod.name;
        const pauseMs = LEASE_MS[pod.deployment] + 4_000;
        const held = await this.holding(pod.name);
        const at = Date.now();
        pod.paused = true;
        pod.child.kill('SIGSTOP');
        this.s.sims.allio.setLatency(0);
        const taken = this.takeover(pod, held, at, pauseMs);
        await sleep(pauseMs);
        pod.child.kill('SIGCONT');
        pod.paused = false;
        rec.detail = `paused ${(pauseMs / 1000).toFixed(0)} s (lease ${LEASE_MS[pod.deployment] / 1000} s)`;
        rec.takeovers.push(await taken);
        return;
      }
      case 'partition':
        await this.partition(p, rec);
        return;
      case 'rollout': {
        const before = this.s.live().length;
        const starts: number[] = [];
        const stops: number[] = [];
        await Promise.all(
          DEPLOYMENTS.map(async (d) => {
            for (const old of this.s.live(d)) {
              const fresh = await this.s.startPod(d);
              starts.push((fresh.readyAt ?? Date.now()) - fresh.startedAt);
              const t = Date.now();
              await this.s.terminate(old);
              stops.push(Date.now() - t);
            }
          }),
        );
        rec.detail = `${before} pods replaced; start to /healthz up to ${(Math.max(...starts) / 1000).toFixed(1)} s, graceful stop up to ${(Math.max(...stops) / 1000).toFixed(1)} s`;
        return;
      }
      case 'rabbitmq-restart':
        rec.detail = await this.s.rabbit.restart(2_000);
        break;
      case 'redis-restart':
        await this.s.redis.restart(1_000);
        break;
      case 'postgres-restart':
        await this.s.pg.restart();
        break;
      case 'postgres-kill-backends':
        rec.detail = `${await this.s.pg.terminateBackends()} backends terminated`;
        break;
      case 'allio-outage': {
        const allio = this.s.sims.allio;
        allio.failNext(1_000_000_000, 503);
        await sleep(this.o.allioOutageMs);
        allio.failNext(0, 503);
        rec.detail = `ALLIO answered 503 for ${this.o.allioOutageMs / 1000} s`;
        return;
      }
      case 'partner-silence': {
        for (const partner of this.s.sims.partners) partner.behaviour.silent = true;
        await sleep(this.o.partnerSilenceMs);
        for (const partner of this.s.sims.partners) partner.behaviour.silent = false;
        rec.detail = `partners silent for ${this.o.partnerSilenceMs / 1000} s`;
        return;
      }
    }
    if (SERVER_FAULTS.has(p.kind)) rec.recoveries.push(...(await this.recovery()));
  }

  /**
   * One more pod of allio-sync or mq-bridge (seeded), in a network namespace of its own: once it
   * holds work (or after 15 s), its link is cut for longer than its lease, then restored. Its work
   * must pass to the others meanwhile; once the link is back it must be ready and claim work again
   * without having exited, and write nothing stale (the write audit, checked in invariants.ts).
   * Then it is stopped as a scale-down would (exit 0), and its namespace removed.
   */
  private async partition(p: PlannedFault, rec: FaultRecord): Promise<void> {
    if (!this.s.net) {
      rec.skipped =
        this.s.netSkipped ?? 'the run was started without the network for pods in namespaces';
      return;
    }
    const deployment: DeploymentName = ISOLATABLE[p.pick % ISOLATABLE.length] ?? 'allio-sync';
    const pod = await this.s.startPod(deployment, { isolated: true });
    const net = pod.net;
    if (!net) throw new Error(`${pod.name} was started outside a network namespace`);
    rec.target = `${pod.name} at ${pod.host}`;
    const out: PartitionOutcome = {
      pod: pod.name,
      address: pod.host,
      leaseMs: LEASE_MS[deployment],
      cutMs: LEASE_MS[deployment] + 4_000,
      limitMs: PARTITION_RECOVERY_MS,
    };
    rec.partition = out;
    try {
      // ALLIO answering slowly keeps an allio-sync pod mid-request when its link goes.
      this.s.sims.allio.setLatency(2_500);
      const held = await this.holding(pod.name, 15_000);
      out.cutAt = Date.now();
      await net.cut();
      this.s.sims.allio.setLatency(0);
      const taken = this.takeover(pod, held, out.cutAt, out.cutMs);
      await sleep(out.cutMs);
      await net.restore();
      out.restoredAt = Date.now();
      rec.takeovers.push(await taken);
      await this.recovered(pod, out.restoredAt, out);
    } finally {
      if (out.cutAt && !out.restoredAt) await net.restore().catch(() => undefined);
      if (pod.exit) out.exited = `${String(pod.exit.code)} (${pod.exit.end})`;
      await this.s.terminate(pod);
    }
    const s = (ms?: number) => (ms === undefined ? 'NEVER' : `${(ms / 1000).toFixed(1)} s`);
    rec.detail =
      `link cut ${out.cutMs / 1000} s (lease ${out.leaseMs / 1000} s); once back: ready after ${s(out.readyMs)}, claiming work after ${s(out.claimMs)}; ` +
      `${out.leaseLost ?? '?'} write(s) of its own refused for a lost lease${out.exited ? `; EXITED ${out.exited}` : ''}`;
  }

  /** Waits until the pod answers /readyz and has claimed work since `since`, up to the limit. */
  private async recovered(pod: Pod, since: number, out: PartitionOutcome): Promise<void> {
    const base = `http://${pod.host}:${pod.port}`;
    while (
      Date.now() - since < out.limitMs &&
      !pod.exit &&
      (out.readyMs === undefined || out.claimMs === undefined)
    ) {
      if (out.readyMs === undefined) {
        const ok = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
          async (r) => (await r.arrayBuffer(), r.status === 200),
          () => false,
        );
        if (ok) out.readyMs = Date.now() - since;
      }
      if (out.claimMs === undefined) {
        const claim = firstClaim(
          await isolatedWrites(this.s.db, pod.host, new Date(since)).catch(() => []),
          pod.name,
          since,
        );
        if (claim) out.claimMs = Math.max(0, claim.at.getTime() - since);
      }
      await sleep(250);
    }
    const metrics = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(3_000) }).then(
      (r) => r.text(),
      () => undefined,
    );
    if (metrics !== undefined) {
      out.leaseLost = [...metrics.matchAll(/^hub_lease_lost_total(?:\{[^}]*\})? (\S+)$/gm)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
    }
  }

  /**
   * Waits up to `ms` for the pod to hold work (a worker is struck mid-task, after it got its quota
   * slot or mid-request, more often than not), and returns what it holds then.
   */
  private async holding(pod: string, ms = 5_000): Promise<Array<{ table: string; id: string }>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const rows = await this.held(pod);
      if (rows.length > 0 || Date.now() > deadline) return rows;
      await sleep(100);
    }
  }

  /** Rows the pod holds now (claimed, in progress), by table. */
  private async held(pod: string): Promise<Array<{ table: string; id: string }>> {
    const out: Array<{ table: string; id: string }> = [];
    for (const table of this.tables) {
      // A claim's owner is `<instance>/<reconciler>/<slot>`.
      const rows = await this.s
        .db(table)
        .where({ status: 1 })
        .andWhere('locked_by', 'like', `${pod}/%`)
        .select('id')
        .catch(() => []);
      for (const r of rows as Array<{ id: string }>) out.push({ table, id: String(r.id) });
    }
    return out;
  }

  /** Waits until none of `rows` is still held by the pod: taken over, finished, or released. */
  private async takeover(
    pod: Pod,
    rows: Array<{ table: string; id: string }>,
    at: number,
    minWait = 0,
  ): Promise<Takeover> {
    const limitMs = LEASE_MS[pod.deployment] + 5_000;
    const result: Takeover = { pod: pod.name, rows: rows.length, limitMs };
    if (rows.length === 0) {
      result.ms = 0;
      return result;
    }
    const deadline = at + Math.max(limitMs * 2, minWait);
    while (Date.now() < deadline) {
      let still = 0;
      for (const r of rows) {
        const row = await this.s
          .db(r.table)
          .where({ id: r.id })
          .first('locked_by', 'status')
          .catch(() => undefined);
        if (
          row === undefined ||
          (row.status === 1 && String(row.locked_by).startsWith(`${pod.name}/`))
        ) {
          still++;
        }
      }
      if (still === 0) {
        result.ms = Date.now() - at;
        return result;
      }
      await sleep(250);
    }
    return result;
  }

  /** Probes each kind of work until it is served at its normal latency again, for at most 20 s. */
  private async recovery(): Promise<Recovery[]> {
    const back = Date.now();
    const kinds: Recovery['probe'][] = ['webhook', 'open', 'connect'];
    return Promise.all(
      kinds.map(async (probe) => {
        const normal = Math.max(
          this.probes.baseline[probe] * 3,
          this.probes.baseline[probe] + 1_000,
        );
        while (Date.now() - back < 20_000) {
          const start = Date.now();
          const latency = await this.probes[probe]().catch(() => undefined);
          if (latency !== undefined && latency <= normal) {
            return { probe, ms: start - back, latencyMs: latency };
          }
          await sleep(200);
        }
        return { probe };
      }),
    );
  }
}
