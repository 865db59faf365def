// Runs one fuzz target against the stack and checks the invariants every target shares: no 5xx,
// no process death (alive and /healthz after every case), nothing stored for a rejected input,
// small error answers, bounded RSS and open files over the run. Two modes: `assert` stops at the
// first violation with fast-check's counterexample (seed and path to replay); `census` runs every
// case and tallies what happened, for the table of `npm run fuzz`.
import fc from 'fast-check';
import { readdirSync } from 'node:fs';
import { healthy, type FuzzStack, type ServiceName } from './stack.js';

/** Every case's answer outcome, as a target reports it. */
export interface Outcome {
  /** HTTP status, or for a queue message 200 (handled) / 400 (dead-lettered); 0 for no answer. */
  status: number;
  /** Whether no answer is acceptable here (the client reset or half-closed the connection). */
  silent?: boolean;
  /**
   * Whether the server may have received a whole request the client never saw answered (a reset
   * after sending, or Content-Length/Transfer-Encoding that lie so the bytes hold more than one
   * request): it may rightly have stored it, and may still be working on it when the case ends.
   */
  mayHaveLanded?: boolean;
  /** Bytes of the answer's body. */
  bodyBytes?: number;
  /** Target-specific broken promises. */
  violations?: string[];
}

export interface Target<C> {
  name: string;
  /** Processes that serve this target: they must stay alive, their RSS is watched. */
  services: ServiceName[];
  arbitrary(stack: FuzzStack): fc.Arbitrary<C>;
  run(stack: FuzzStack, c: C): Promise<Outcome>;
  /** After the cases: the target still works for a valid input (a queue is not blocked, …). */
  after?(stack: FuzzStack): Promise<string[]>;
  /** Describes a case briefly for a report (bodies can be 300 KB). */
  describe?(c: C): string;
}

export interface TargetStats {
  target: string;
  cases: number;
  s2xx: number;
  s4xx: number;
  s5xx: number;
  silent: number;
  deaths: number;
  /** Rows stored (or changed) while a rejected input was handled: must be 0. */
  rowsStoredOnReject: number;
  peakRssMb: number;
  rssGrowthMb: number;
  violations: string[];
  violationCount: number;
  firstViolation?: { seed: number; index: number; case: string };
  ms: number;
}

/**
 * RSS growth allowed over a run, measured from the sample after warm-up (the first 10% of cases,
 * at least 20) to the highest later sample. A Node service settles near 100–150 MB; V8 keeps
 * freed old-space pages for a while, so a few tens of MB of drift is normal, while the validation
 * amplification of a 256 KB body alone took ~100 MB. 64 MB separates the two.
 */
export const RSS_GROWTH_LIMIT_MB = 64;
/** An error answer's body stays small whatever the input (a client-visible figure, not a tuning knob). */
export const ERROR_BODY_LIMIT = 16 * 1024;
/** Open file descriptors may rise this much over a run and must come back below it after. */
const FD_SLACK = 32;

const MB = 1024 * 1024;

function fdCount(pid: number | undefined): number {
  try {
    return pid ? readdirSync(`/proc/${pid}/fd`).length : 0;
  } catch {
    return 0;
  }
}

/** Rows in the tables an input could write to, and a digest of the small ones it could change. */
export async function fingerprint(stack: FuzzStack): Promise<{ rows: number; digest: string }> {
  const appendOnly = [
    'allio_webhook',
    'kitchen_orders',
    'kitchen_payments',
    'kitchen_warehouse_events',
    'kitchen_outbox',
    'smart_home_requests',
    'auth_clients',
    'api_keys',
    'allio_integrations',
  ];
  const mutable = [
    'kitchen_dishes',
    'kitchen_stock',
    'smart_home_subscriptions',
    'allio_integrations',
    'auth_clients',
  ];
  const counts = appendOnly.map((t) => `(select count(*) from ${t})`).join(' + ');
  const digests = mutable
    .map(
      (t) =>
        `(select coalesce(md5(string_agg(md5(x::text), ',' order by md5(x::text))), '') from ${t} x)`,
    )
    .join(" || ':' || ");
  const opens = stack.commands.get('device.open') ?? 0;
  const r = await stack.ctx.db.raw(`select (${counts})::int as rows, ${digests} as digest`);
  const row = r.rows[0] as { rows: number; digest: string };
  return { rows: row.rows + opens, digest: `${row.digest}:${opens}` };
}

/** Waits until the stored state stops changing (two equal readings 100 ms apart, 3 s at most). */
async function settle(stack: FuzzStack): Promise<void> {
  let last = await fingerprint(stack);
  for (const deadline = Date.now() + 3_000; Date.now() < deadline;) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = await fingerprint(stack);
    if (now.digest === last.digest && now.rows === last.rows) return;
    last = now;
  }
}

export interface RunOptions {
  numRuns: number;
  mode: 'assert' | 'census';
  seed?: number;
}

export function emptyStats(target: string): TargetStats {
  return {
    target,
    cases: 0,
    s2xx: 0,
    s4xx: 0,
    s5xx: 0,
    silent: 0,
    deaths: 0,
    rowsStoredOnReject: 0,
    peakRssMb: 0,
    rssGrowthMb: 0,
    violations: [],
    violationCount: 0,
    ms: 0,
  };
}

/** Checks one case's outcome and the processes; returns what broke. */
async function checkCase(
  stack: FuzzStack,
  target: Target<unknown>,
  o: Outcome,
  before: { rows: number; digest: string },
  stats: TargetStats,
): Promise<string[]> {
  const broken = [...(o.violations ?? [])];
  if (o.status >= 500) broken.push(`answered ${o.status}`);
  if (o.status === 0 && !o.silent) {
    broken.push('no answer (connection closed or 10 s passed without a response)');
  }
  if (o.status >= 400 && (o.bodyBytes ?? 0) > ERROR_BODY_LIMIT) {
    broken.push(`error answer of ${o.bodyBytes} bytes (limit ${ERROR_BODY_LIMIT})`);
  }
  if ((o.status >= 400 || (o.status === 0 && o.silent)) && !o.mayHaveLanded) {
    const after = await fingerprint(stack);
    if (after.digest !== before.digest || after.rows !== before.rows) {
      stats.rowsStoredOnReject += Math.max(1, after.rows - before.rows);
      broken.push(
        `rejected (${o.status}) but stored or published something (${after.rows - before.rows} rows)`,
      );
    }
  }
  for (const name of target.services) {
    const s = stack.services[name];
    const alive = s.child.exitCode() === undefined && (await healthy(s.port));
    if (!alive) {
      stats.deaths++;
      await stack.ensureAlive(name);
      broken.push(
        `${name} died or stopped answering /healthz: ${s.obituaries.at(-1)?.slice(0, 1500) ?? ''}`,
      );
    }
  }
  return broken;
}

function tally(stats: TargetStats, o: Outcome): void {
  stats.cases++;
  if (o.status === 0) stats.silent++;
  else if (o.status < 300) stats.s2xx++;
  else if (o.status < 500) stats.s4xx++;
  else stats.s5xx++;
}

export async function runTarget<C>(
  stack: FuzzStack,
  target: Target<C>,
  o: RunOptions,
): Promise<TargetStats> {
  const t0 = Date.now();
  const stats = emptyStats(target.name);
  const seed = o.seed ?? Date.now() ^ (Math.random() * 0x7fffffff);
  const warmup = Math.max(20, Math.floor(o.numRuns / 10));
  const baseline = new Map<ServiceName, number>();
  const fds = new Map(target.services.map((n) => [n, fdCount(stack.services[n].child.child.pid)]));
  const sample = (index: number) => {
    for (const n of target.services) {
      const rss = stack.services[n].child.rss() / MB;
      stats.peakRssMb = Math.max(stats.peakRssMb, rss);
      if (index === warmup || !baseline.has(n)) baseline.set(n, rss);
      else stats.rssGrowthMb = Math.max(stats.rssGrowthMb, rss - (baseline.get(n) ?? rss));
    }
  };
  let index = 0;
  const property = fc.asyncProperty(target.arbitrary(stack), async (c) => {
    const i = index++;
    const before = await fingerprint(stack);
    const outcome = await target.run(stack, c as C);
    tally(stats, outcome);
    const broken = await checkCase(stack, target as Target<unknown>, outcome, before, stats);
    // A request still being handled must not be counted against the next case.
    if (outcome.mayHaveLanded) await settle(stack);
    if (i % 10 === 0 || i === warmup) sample(i);
    if (broken.length === 0) return true;
    stats.firstViolation ??= { seed, index: i, case: (target.describe ?? describeCase)(c) };
    stats.violationCount += broken.length;
    for (const b of broken) {
      if (stats.violations.length < 20) stats.violations.push(`case ${i}: ${b}`);
    }
    return o.mode === 'census';
  });
  try {
    // Shrinking replays failing cases, and a case that kills a process costs a restart each time:
    // the first counterexample is reported as found (its seed and path replay it).
    await fc.assert(property, { numRuns: o.numRuns, seed, endOnFailure: true, verbose: 0 });
  } catch (thrown) {
    const text = thrown instanceof Error ? thrown.message : String(thrown);
    const replay = /seed: (-?\d+), path: "([^"]*)"/.exec(text);
    if (replay) {
      stats.violations.push(
        `replay with FUZZ_SEED=${replay[1]} (fast-check path ${replay[2]}); first failing case: ${stats.firstViolation?.case ?? '?'}`,
      );
    } else stats.violations.push(`the property threw: ${text.slice(0, 2000)}`);
  } finally {
    sample(index);
    stats.ms = Date.now() - t0;
  }
  const endOfRun: string[] = [];
  for (const name of target.services) {
    const s = stack.services[name];
    const start = fds.get(name) ?? 0;
    // Sockets of the last cases may still be closing; wait for the count to come back.
    const deadline = Date.now() + 10_000;
    let now = fdCount(s.child.child.pid);
    while (now > start + FD_SLACK && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      now = fdCount(s.child.child.pid);
    }
    if (now > start + FD_SLACK) {
      endOfRun.push(`${name} holds ${now - start} more open files than before the run`);
    }
  }
  if (stats.rssGrowthMb > RSS_GROWTH_LIMIT_MB) {
    endOfRun.push(
      `RSS grew ${stats.rssGrowthMb.toFixed(0)} MB after warm-up (limit ${RSS_GROWTH_LIMIT_MB})`,
    );
  }
  if (target.after) endOfRun.push(...(await target.after(stack)));
  stats.violations.push(...endOfRun);
  stats.violationCount += endOfRun.length;
  return stats;
}

/** The Markdown table `npm run fuzz` prints (and the README keeps). */
export function table(rows: TargetStats[]): string {
  const head = [
    'target',
    'cases',
    '2xx',
    '4xx',
    '5xx',
    'no answer',
    'deaths',
    'rows stored on reject',
    'peak RSS MB',
    'RSS growth MB',
    'violations',
    'seconds',
  ];
  const body = rows.map((r) =>
    [
      r.target,
      r.cases,
      r.s2xx,
      r.s4xx,
      r.s5xx,
      r.silent,
      r.deaths,
      r.rowsStoredOnReject,
      r.peakRssMb.toFixed(0),
      r.rssGrowthMb.toFixed(0),
      r.violationCount,
      (r.ms / 1000).toFixed(0),
    ].map(String),
  );
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n');
}

function describeCase(c: unknown): string {
  const s = JSON.stringify(c, (_k, v: unknown) => {
    if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer') {
      return `<${(v as { data: number[] }).data.length} bytes>`;
    }
    if (typeof v === 'string' && v.length > 200) return `${v.slice(0, 120)}…(${v.length} chars)`;
    return v;
  });
  return s.length > 2000 ? `${s.slice(0, 2000)}…` : s;
}
