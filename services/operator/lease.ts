// One active operator replica: a coordination.k8s.io Lease taken and renewed through
// CoordinationV1Api (the JavaScript client has no leader election). The decision is pure; the
// elector around it does the reads and writes, and a conflicting write (409) means another replica
// won the race.
import type { CoordinationV1Api, V1Lease } from '@kubernetes/client-node';
import { toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { sleep } from '../core/sleep.js';

type LeaseDecision =
  | { kind: 'create' }
  /** We hold it: renew. */
  | { kind: 'renew' }
  /** Its holder stopped renewing: take it over. */
  | { kind: 'takeover'; from: string }
  | { kind: 'wait'; holder: string; expiresInMs: number };

interface LeaseView {
  holderIdentity?: string | null;
  renewTime?: Date | string | null;
  leaseDurationSeconds?: number | null;
}

export function decide(
  lease: LeaseView | undefined,
  me: string,
  now: Date,
  durationSeconds: number,
): LeaseDecision {
  if (!lease) return { kind: 'create' };
  const holder = lease.holderIdentity ?? '';
  if (holder === me) return { kind: 'renew' };
  if (!holder) return { kind: 'takeover', from: '' };
  const renewed = lease.renewTime ? new Date(lease.renewTime).getTime() : 0;
  const expiresAt = renewed + (lease.leaseDurationSeconds ?? durationSeconds) * 1000;
  if (expiresAt <= now.getTime()) return { kind: 'takeover', from: holder };
  return { kind: 'wait', holder, expiresInMs: expiresAt - now.getTime() };
}

/** The Lease to write for a decision to hold it. */
export function heldLease(
  current: V1Lease | undefined,
  name: string,
  namespace: string,
  me: string,
  now: Date,
  durationSeconds: number,
  takeover: boolean,
): V1Lease {
  const spec = current?.spec ?? {};
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { ...(current?.metadata ?? {}), name, namespace },
    spec: {
      ...spec,
      holderIdentity: me,
      leaseDurationSeconds: durationSeconds,
      acquireTime: takeover || !current ? now : (spec.acquireTime ?? now),
      renewTime: now,
      leaseTransitions: (spec.leaseTransitions ?? 0) + (takeover ? 1 : 0),
    },
  };
}

const statusOf = (e: unknown): number | undefined => {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
};

interface ElectorOptions {
  api: CoordinationV1Api;
  name: string;
  namespace: string;
  identity: string;
  durationSeconds: number;
  logger: Logger;
  onStartedLeading(): Promise<void> | void;
  onStoppedLeading(): Promise<void> | void;
}

/**
 * Campaigns until stopped: renews every third of the lease while leading, retries at the same pace
 * while another replica holds it. A failed renewal past the lease's end gives leadership up, so two
 * replicas never act at once for longer than the clock skew between them.
 */
export class LeaderElector {
  private readonly abort = new AbortController();
  private leading = false;
  private lastRenew = 0;
  private loop?: Promise<void>;

  constructor(private readonly o: ElectorOptions) {}

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops campaigning; a leader steps down and clears the Lease so a standby takes over at once. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    if (!this.leading) return;
    await this.setLeading(false);
    try {
      await this.release();
    } catch (thrown) {
      this.o.logger.warn(
        { err: toError(thrown) },
        'could not release the operator lease; a standby takes over when it expires',
      );
    }
  }

  private async release(): Promise<void> {
    const { api, name, namespace, identity } = this.o;
    const current = await api.readNamespacedLease({ name, namespace });
    if (current.spec?.holderIdentity !== identity) return;
    await api.replaceNamespacedLease({
      name,
      namespace,
      body: { ...current, spec: { ...current.spec, holderIdentity: undefined } },
    });
  }

  /** One round: read, decide, write. Exposed for tests that drive the elector step by step. */
  async tryAcquireOrRenew(now = new Date()): Promise<boolean> {
    const { api, name, namespace, identity, durationSeconds } = this.o;
    let current: V1Lease | undefined;
    try {
      current = await api.readNamespacedLease({ name, namespace });
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
    }
    const d = decide(current?.spec, identity, now, durationSeconds);
    if (d.kind === 'wait') return false;
    const body = heldLease(
      current,
      name,
      namespace,
      identity,
      now,
      durationSeconds,
      d.kind === 'takeover',
    );
    try {
      if (d.kind === 'create') await api.createNamespacedLease({ namespace, body });
      else await api.replaceNamespacedLease({ name, namespace, body });
    } catch (e) {
      // Someone else wrote first (resourceVersion conflict, or created it a moment earlier).
      if (statusOf(e) === 409) return false;
      throw e;
    }
    if (d.kind === 'takeover') {
      this.o.logger.info({ from: d.from || '(nobody)' }, 'took over the operator lease');
    }
    return true;
  }

  private async run(): Promise<void> {
    const retryMs = (this.o.durationSeconds * 1000) / 3;
    while (!this.abort.signal.aborted) {
      let held = false;
      try {
        held = await this.tryAcquireOrRenew();
      } catch (thrown) {
        this.o.logger.warn({ err: toError(thrown) }, 'operator lease read or write failed');
      }
      if (held) this.lastRenew = Date.now();
      const expired = Date.now() - this.lastRenew >= this.o.durationSeconds * 1000;
      if (held && !this.leading) await this.setLeading(true);
      else if (!held && this.leading && expired) await this.setLeading(false);
      await sleep(retryMs, this.abort.signal);
    }
  }

  private async setLeading(leading: boolean): Promise<void> {
    this.leading = leading;
    this.o.logger.info(
      { identity: this.o.identity },
      leading ? 'leading: reconciling resources' : 'no longer leading',
    );
    try {
      await (leading ? this.o.onStartedLeading() : this.o.onStoppedLeading());
    } catch (thrown) {
      this.o.logger.error({ err: toError(thrown) }, 'leadership change handler failed');
    }
  }
}
