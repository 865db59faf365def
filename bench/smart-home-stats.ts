// Shared by the smart-home benchmark and its child processes: latency samples with percentiles, and
// the messages exchanged over the IPC channel between the load generator and a child.
import { performance } from 'node:perf_hooks';

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one host. */
export const nowMs = (): number => performance.timeOrigin + performance.now();

export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Every sample is kept: a 20 s run at 500/s is 10,000 numbers, and exact percentiles need no buckets. */
export class Samples {
  private values: number[] = [];

  add(v: number): void {
    this.values.push(v);
  }

  get count(): number {
    return this.values.length;
  }

  reset(): void {
    this.values = [];
  }

  summary(): Summary {
    const s = Float64Array.from(this.values).sort();
    const n = s.length;
    if (n === 0) return { n: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
    // Nearest-rank percentiles: p99 of 10,000 samples is the 9,900th smallest.
    const at = (q: number) => s[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] ?? NaN;
    let sum = 0;
    for (const v of s) sum += v;
    return { n, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[n - 1] ?? NaN, mean: sum / n };
  }
}

/** Named sample sets, for per-stage timings inside a child. */
export class Stages {
  private readonly byName = new Map<string, Samples>();

  add(name: string, ms: number): void {
    let s = this.byName.get(name);
    if (!s) this.byName.set(name, (s = new Samples()));
    s.add(ms);
  }

  reset(): void {
    this.byName.clear();
  }

  summaries(): Record<string, Summary> {
    return Object.fromEntries([...this.byName].map(([k, v]) => [k, v.summary()]));
  }
}

export type ChildRole = 'api' | 'bridge' | 'partner' | 'echo';

/** What a child needs to connect to the servers of this run; passed as JSON in BENCH_SH_CHILD. */
export interface ChildConfig {
  roles: ChildRole[];
  databaseUrl: string;
  schema: string;
  redisUrl: string;
  keyPrefix: string;
  amqpUrl: string;
  /** Extra environment of the api and bridge configuration (tenantApiEnv). */
  env: Record<string, string>;
  partner: string;
  commandQueue: string;
  /** The bare request/reply peer's request queue (role `echo`). */
  echoQueue: string;
  /** Time the hot-path stages (JWT, SQL, Redis, AMQP confirms); off for the headline run. */
  profile: boolean;
  /** The api's HTTP_MAX_CONNECTIONS, when not the default. */
  maxConnections?: number;
}

/** `gc` collects garbage first (the api child runs with --expose-gc), for a memory figure without garbage. */
export type ToChild =
  { cmd: 'stats'; gc?: boolean } | { cmd: 'reset'; stages: boolean } | { cmd: 'stop' };

export interface ChildStats {
  pid: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** V8 heap reserved (used + free), and memory of C++ objects and buffers bound to JS objects. */
  heapTotalBytes: number;
  externalBytes: number;
  /** CPU time since the last reset, in % of one core. */
  cpuPercent: number;
  /** Event-loop delay since the last reset, in ms. */
  loopDelay: { p50: number; p99: number; max: number };
  webSockets: number;
  stages: Record<string, Summary>;
}

export type FromChild =
  | { type: 'ready'; url?: string }
  | { type: 'stats'; stats: ChildStats }
  | { type: 'reset' }
  | { type: 'stopped' }
  | { type: 'error'; message: string };
