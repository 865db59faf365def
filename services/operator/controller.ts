// The operator's control loop: informers on AllioIntegration and SmartHomePartner feed a work
// queue keyed by resource; one worker plans (pure), executes, and writes status back. Failures
// come back with backoff; a periodic resync re-applies everything, repairing drift.
import type { KubernetesObject } from '@kubernetes/client-node';
import { retryDelayMs, type BackoffPolicy } from '../core/engine/backoff.js';
import { toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { Waker } from '../core/sleep.js';
import { execute, type ExecutorDeps } from './executor.js';
import { toObserved, type KubeResources, type ResourceInformer } from './kube.js';
import type { OperatorMetrics } from './metrics.js';
import {
  FINALIZER,
  KINDS,
  nextStatus,
  plan,
  statusChanged,
  type Kind,
  type Observed,
} from './reconcile.js';

interface ControllerOptions {
  kube: KubeResources;
  deps: ExecutorDeps;
  logger: Logger;
  metrics: OperatorMetrics;
  /** Every resource is re-applied this often (default 5 min). */
  resyncMs?: number;
  /** Delay of an informer restart after its watch failed (default 5 s). */
  informerRestartMs?: number;
  backoff?: BackoffPolicy;
}

const DEFAULT_OPERATOR_BACKOFF: BackoffPolicy = { baseMs: 500, maxMs: 5 * 60_000, factor: 2 };

const keyOf = (kind: Kind, ns: string, name: string) => `${kind}/${ns}/${name}`;

export class Controller {
  private readonly informers = new Map<Kind, ResourceInformer>();
  private readonly queue = new Map<string, Observed>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly waker = new Waker();
  private readonly stopping = new AbortController();
  private worker?: Promise<void>;
  private stopped = false;

  constructor(private readonly o: ControllerOptions) {}

  async start(): Promise<void> {
    for (const kind of Object.keys(KINDS) as Kind[]) {
      const informer = this.o.kube.informer(kind);
      const enqueue = (obj: KubernetesObject) => this.enqueue(toObserved(kind, obj));
      informer.on('add', enqueue);
      informer.on('update', enqueue);
      // A deleted object is gone: the finalizer already made us undo it while it was being deleted.
      informer.on('delete', (obj) => this.forget(toObserved(kind, obj)));
      informer.on('error', (err: unknown) => {
        if (this.stopped) return;
        this.o.logger.warn(
          { err: toError(err ?? 'watch ended'), kind },
          'watch failed; restarting the informer',
        );
        this.later(this.o.informerRestartMs ?? 5_000, () => {
          informer
            .start()
            .catch((e: unknown) =>
              this.o.logger.warn({ err: toError(e), kind }, 'informer restart failed'),
            );
        });
      });
      this.informers.set(kind, informer);
    }
    this.worker = this.work();
    await Promise.all([...this.informers.values()].map((i) => i.start()));
    this.scheduleResync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.stopping.abort();
    this.waker.wake();
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
    await this.worker;
  }

  private enqueue(o: Observed): void {
    if (this.stopped) return;
    this.queue.set(keyOf(o.kind, o.metadata.namespace, o.metadata.name), o);
    this.waker.wake();
  }

  private forget(o: Observed): void {
    const key = keyOf(o.kind, o.metadata.namespace, o.metadata.name);
    this.queue.delete(key);
    this.failures.delete(key);
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(t);
  }

  private scheduleResync(): void {
    this.later(this.o.resyncMs ?? 5 * 60_000, () => {
      for (const [kind, informer] of this.informers) {
        for (const obj of informer.list()) this.enqueue(toObserved(kind, obj));
      }
      this.scheduleResync();
    });
  }

  private async work(): Promise<void> {
    while (!this.stopped) {
      const next = this.queue.entries().next();
      if (next.done) {
        await this.waker.wait(60_000, this.stopping.signal);
        continue;
      }
      const [key, observed] = next.value;
      this.queue.delete(key);
      let retry: boolean;
      try {
        retry = await this.reconcile(observed);
      } catch (thrown) {
        this.o.logger.warn({ err: toError(thrown), resource: key }, 'reconcile failed');
        this.o.metrics.reconciles.inc({ kind: observed.kind, result: 'failed' });
        retry = true;
      }
      if (retry) this.retryLater(key, observed);
      else this.failures.delete(key);
    }
  }

  /** Requeues the newest version the informer holds after a backoff that grows per failure. */
  private retryLater(key: string, observed: Observed): void {
    const attempt = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, attempt);
    this.later(retryDelayMs(attempt, this.o.backoff ?? DEFAULT_OPERATOR_BACKOFF), () => {
      const latest = this.informers
        .get(observed.kind)
        ?.get(observed.metadata.name, observed.metadata.namespace);
      if (latest && !this.queue.has(key)) this.enqueue(toObserved(observed.kind, latest));
    });
  }

  /** One resource: plan, execute, write status. Returns whether it must be retried. */
  private async reconcile(observed: Observed): Promise<boolean> {
    const p = plan(observed);
    const log = this.o.logger.child({
      kind: observed.kind,
      resource: `${observed.metadata.namespace}/${observed.metadata.name}`,
    });
    if (p.kind === 'skip') {
      log.debug({ reason: p.reason }, 'nothing to do');
      this.o.metrics.reconciles.inc({ kind: observed.kind, result: 'skipped' });
      return false;
    }
    let current = observed;
    const finalizers = {
      add: async () => {
        current = await this.o.kube.setFinalizers(current, [
          ...(current.metadata.finalizers ?? []),
          FINALIZER,
        ]);
      },
      remove: async () => {
        current = await this.o.kube.setFinalizers(
          current,
          (current.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
        );
      },
    };
    const outcomes = p.kind === 'invalid' ? [] : await execute(p.actions, this.o.deps, finalizers);
    const failed = outcomes.filter((x) => x.result === 'failed');
    const released = outcomes.some(
      (x) => x.action.type === 'removeFinalizer' && x.result === 'done',
    );
    const result = failed.length
      ? 'failed'
      : p.kind === 'delete'
        ? 'deleted'
        : p.kind === 'invalid'
          ? 'invalid'
          : 'applied';
    this.o.metrics.reconciles.inc({ kind: observed.kind, result });
    if (failed.length) log.warn({ failed }, 'some actions failed; retrying with backoff');
    else log.info({ result, actions: outcomes.map((x) => x.action.type) }, 'reconciled');
    // Once the finalizer is released the object is on its way out; there is no status to write.
    if (!released) {
      const status = nextStatus(current, p, outcomes, new Date());
      if (statusChanged(current.status, status)) await this.o.kube.patchStatus(current, status);
    }
    return failed.length > 0;
  }
}
