// The reconcile loop: an object with a life cycle (idle → running → stopping → stopped) that claims
// due work, hands it to an injected handler, wakes early on notify(), backs off when idle or when
// claiming fails, and on stop() waits for in-flight work before it resolves.
import { toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { Waker, sleep } from '../sleep.js';
import { nextIdleDelayMs, retryDelayMs } from './backoff.js';
import type { LeaseRenewal } from './work-table.js';

type ReconcilerState = 'idle' | 'running' | 'stopping' | 'stopped';

/** The longest wait between two failed claims. */
const CLAIM_RETRY_MAX_MS = 2_000;

export interface ReconcilerOptions<T> {
  name: string;
  /** Claims a batch for this owner; an empty batch means nothing is due. */
  claim(owner: string): Promise<T[]>;
  /**
   * Handles a claimed batch and records every outcome itself. `signal` aborts when shutdown has run
   * out of patience: the handler should release what it has not started and return.
   */
  handle(batch: T[], owner: string, signal: AbortSignal): Promise<void>;
  /** Called when `handle` throws (it should not): typically marks the batch for retry. */
  onHandlerError?(batch: T[], owner: string, error: Error): Promise<void>;
  /**
   * Renews the leases of the batch in flight (every third of the lease) until `handle` returns, so a
   * slow partner or a long rate-limiter wait does not hand the work to another replica meanwhile.
   */
  lease?: LeaseRenewal<T>;
  /** Refreshes backlog gauges; called at most once per `statsIntervalMs`. */
  stats?(): Promise<{ backlog: number; oldestDueAgeSeconds: number; retrying?: number }>;
  /** Parallel claim/handle loops in this process. */
  concurrency?: number;
  /** Shortest and longest sleep when idle; NOTIFY wakes the loop earlier. */
  pollMinMs?: number;
  pollMaxMs?: number;
  statsIntervalMs?: number;
  owner: string;
  logger: Logger;
  metrics: Metrics;
}

export class Reconciler<T> {
  private _state: ReconcilerState = 'idle';
  private readonly waker = new Waker();
  private readonly stopController = new AbortController();
  private readonly abortInFlight = new AbortController();
  private loops: Promise<void>[] = [];
  private lastStats = 0;
  readonly name: string;
  private readonly log: Logger;

  constructor(private readonly o: ReconcilerOptions<T>) {
    this.name = o.name;
    this.log = o.logger.child({ reconciler: o.name });
  }

  get state(): ReconcilerState {
    return this._state;
  }

  start(): this {
    if (this._state !== 'idle') {
      throw new Error(`reconciler ${this.name} cannot start from ${this._state}`);
    }
    this._state = 'running';
    const n = this.o.concurrency ?? 1;
    for (let slot = 0; slot < n; slot++) this.loops.push(this.loop(slot));
    this.log.info({ concurrency: n }, 'reconciler started');
    return this;
  }

  /** Wakes sleeping loops now (a NOTIFY said new work arrived). */
  notify(): void {
    if (this._state === 'running') this.waker.wake();
  }

  /**
   * Stops claiming, waits up to `timeoutMs` for in-flight batches, then aborts them so they release
   * their rows (anything still held after that is recovered by lease expiry).
   */
  async stop(timeoutMs = 20_000): Promise<void> {
    if (this._state === 'idle') {
      this._state = 'stopped';
      return;
    }
    if (this._state !== 'running') return Promise.all(this.loops).then(() => undefined);
    this._state = 'stopping';
    this.stopController.abort();
    const timer = setTimeout(() => this.abortInFlight.abort(), timeoutMs);
    try {
      await Promise.all(this.loops);
    } finally {
      clearTimeout(timer);
      this._state = 'stopped';
      this.log.info('reconciler stopped');
    }
  }

  private async loop(slot: number): Promise<void> {
    const owner = `${this.o.owner}/${this.name}/${slot}`;
    const stop = this.stopController.signal;
    let idleMs = 0;
    let claimFailures = 0;
    let failingSince = 0;
    while (!stop.aborted) {
      await this.refreshStats();
      let batch: T[];
      try {
        batch = await this.o.claim(owner);
        if (claimFailures > 0) {
          this.log.info(
            { failures: claimFailures, forMs: Date.now() - failingSince },
            'claims succeed again',
          );
        }
        claimFailures = 0;
      } catch (thrown) {
        // A failed fetch counts as "nothing to do" and waits instead of spinning, but never long: a
        // claim is one cheap query, and work must resume within a couple of seconds of the database
        // coming back, not after the rest of a long backoff. One line when claims start failing,
        // then a reminder every 30 failures (about a minute).
        if (claimFailures++ === 0) failingSince = Date.now();
        this.o.metrics.reconcileClaimErrors.inc({ reconciler: this.name });
        const delay = retryDelayMs(claimFailures, {
          baseMs: 250,
          maxMs: CLAIM_RETRY_MAX_MS,
          factor: 2,
        });
        if (claimFailures === 1 || claimFailures % 30 === 0) {
          this.log.error(
            { err: toError(thrown), failures: claimFailures, delayMs: delay },
            `claim failed; retrying every ${CLAIM_RETRY_MAX_MS / 1000} s at most`,
          );
        }
        await sleep(delay, stop);
        continue;
      }
      if (batch.length === 0) {
        idleMs = nextIdleDelayMs(idleMs, this.o.pollMinMs ?? 250, this.o.pollMaxMs ?? 5_000);
        await this.waker.wait(idleMs, stop);
        continue;
      }
      idleMs = 0;
      const end = this.o.metrics.reconcileDuration.startTimer({ reconciler: this.name });
      const heartbeat = this.heartbeat(batch, owner);
      try {
        await this.o.handle(batch, owner, this.abortInFlight.signal);
      } catch (thrown) {
        const err = toError(thrown);
        this.log.error({ err, size: batch.length }, 'handler threw');
        await this.o
          .onHandlerError?.(batch, owner, err)
          .catch((e: unknown) =>
            this.log.error(
              { err: toError(e) },
              'recording the handler error failed; the lease will expire',
            ),
          );
      } finally {
        await heartbeat.stop();
        end();
      }
    }
  }

  /** Renews the batch's leases every `everyMs` until stopped; a failed renewal is logged and retried. */
  private heartbeat(batch: T[], owner: string): { stop(): Promise<void> } {
    const lease = this.o.lease;
    if (!lease) return { stop: async () => undefined };
    let stopped = false;
    let failures = 0;
    let inFlight: Promise<void> = Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const beat = () => {
      inFlight = lease
        .renew(batch, owner)
        .then(
          () => void (failures = 0),
          // One line when renewals start failing; the lease lapses after three misses in a row.
          (thrown: unknown) => {
            if (failures++ === 0) {
              this.log.warn({ err: toError(thrown) }, 'lease renewal failed; trying again');
            }
          },
        )
        .then(() => {
          if (!stopped) timer = setTimeout(beat, lease.everyMs);
        });
    };
    timer = setTimeout(beat, lease.everyMs);
    return {
      stop: async () => {
        stopped = true;
        clearTimeout(timer);
        await inFlight;
      },
    };
  }

  private async refreshStats(): Promise<void> {
    if (!this.o.stats) return;
    const now = Date.now();
    if (now - this.lastStats < (this.o.statsIntervalMs ?? 5_000)) return;
    this.lastStats = now;
    try {
      const s = await this.o.stats();
      this.o.metrics.backlog.set({ reconciler: this.name }, s.backlog);
      this.o.metrics.oldestDueAge.set({ reconciler: this.name }, s.oldestDueAgeSeconds);
      if (s.retrying !== undefined) {
        this.o.metrics.retrying.set({ reconciler: this.name }, s.retrying);
      }
    } catch (thrown) {
      this.log.warn({ err: toError(thrown) }, 'backlog stats failed');
    }
  }
}
