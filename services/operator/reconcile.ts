// The operator's decisions, pure: from a custom resource as observed in Kubernetes to the actions
// that make the hub match it, and from the actions' outcome to the status written back.
import type { z } from 'zod';
import { problemLines } from '../core/bounds.js';
import {
  allioIntegrationResource,
  type AllioIntegrationResource,
} from '../domains/allio/resource.js';
import {
  defaultCommandQueue,
  smartHomePartnerResource,
  type SmartHomePartnerResource,
} from '../contracts/smart-home-partner.js';
import type { PartnerTopology } from '../contracts/smart-home-topology.js';

export const GROUP = 'integration-hub.io';
export const VERSION = 'v1alpha1';
/** Kept on every resource the hub has acted on, so that deleting it first undoes what was done. */
export const FINALIZER = 'integration-hub.io/operator';

export const KINDS = {
  AllioIntegration: { plural: 'alliointegrations', schema: allioIntegrationResource },
  SmartHomePartner: { plural: 'smarthomepartners', schema: smartHomePartnerResource },
} as const;
export type Kind = keyof typeof KINDS;

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface ResourceStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  /** SmartHomePartner: the queue the hub publishes to, remembered to unbind it when it changes. */
  commandQueue?: string;
}

/** A custom resource as the API server returns it. */
export interface Observed {
  apiVersion: string;
  kind: Kind;
  metadata: {
    name: string;
    namespace: string;
    generation?: number;
    resourceVersion?: string;
    deletionTimestamp?: string;
    finalizers?: string[];
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: unknown;
  status?: ResourceStatus;
}

export type Action =
  | { type: 'addFinalizer' }
  | { type: 'removeFinalizer' }
  | { type: 'upsertIntegration'; resource: AllioIntegrationResource }
  | { type: 'deactivateIntegration'; name: string }
  | { type: 'upsertPartner'; resource: SmartHomePartnerResource }
  | { type: 'deactivatePartner'; name: string }
  | { type: 'assertPartnerTopology'; topology: PartnerTopology }
  | { type: 'unbindPartnerTopology'; topology: PartnerTopology }
  /** The partner's client at the authorization server (client credentials for RabbitMQ access). */
  | { type: 'ensureOAuthClient'; partner: string; clientId: string; queue: string }
  | { type: 'removeOAuthClient'; partner: string; clientId: string };

export type Plan =
  | { kind: 'apply'; actions: Action[]; commandQueue?: string }
  | { kind: 'delete'; actions: Action[] }
  | { kind: 'invalid'; problems: string[] }
  /** Nothing to do, and why (logged and counted). */
  | { kind: 'skip'; reason: string };

function validate<S extends z.ZodTypeAny>(
  schema: S,
  o: Observed,
): { ok: true; value: z.infer<S> } | { ok: false; problems: string[] } {
  const parsed = schema.safeParse({
    apiVersion: o.apiVersion,
    kind: o.kind,
    metadata: { name: o.metadata.name, namespace: o.metadata.namespace },
    spec: o.spec,
  });
  if (parsed.success) return { ok: true, value: parsed.data };
  // Bounded: the problems become the status condition's message, which the API server stores.
  return { ok: false, problems: problemLines(parsed.error.issues) };
}

/**
 * What to do for one observed resource. A resource being deleted undoes what the hub did and then
 * releases its finalizer; any other is validated with the same schema `hub apply` uses and applied
 * idempotently (a resync applies it again, repairing drift such as a deleted queue).
 */
export function plan(o: Observed): Plan {
  const finalizers = o.metadata.finalizers ?? [];
  const ours = finalizers.includes(FINALIZER);
  if (o.metadata.deletionTimestamp) {
    if (!ours) return { kind: 'skip', reason: 'being deleted and holds no finalizer of ours' };
    return { kind: 'delete', actions: [...undo(o), { type: 'removeFinalizer' }] };
  }
  const head: Action[] = ours ? [] : [{ type: 'addFinalizer' }];
  if (o.kind === 'AllioIntegration') {
    const v = validate(allioIntegrationResource, o);
    if (!v.ok) return { kind: 'invalid', problems: v.problems };
    return { kind: 'apply', actions: [...head, { type: 'upsertIntegration', resource: v.value }] };
  }
  const v = validate(smartHomePartnerResource, o);
  if (!v.ok) return { kind: 'invalid', problems: v.problems };
  const r = v.value;
  const queue = r.spec.commandQueue ?? defaultCommandQueue(r.metadata.name);
  const clientId = r.spec.oauthClientId ?? r.metadata.name;
  const actions: Action[] = [...head];
  const previous = o.status?.commandQueue;
  // A renamed queue: stop routing to the old one first, so no command lands in both.
  if (previous && previous !== queue) {
    actions.push({
      type: 'unbindPartnerTopology',
      topology: { name: r.metadata.name, commandQueue: previous },
    });
  }
  if (r.spec.active) {
    actions.push({
      type: 'assertPartnerTopology',
      topology: { name: r.metadata.name, commandQueue: queue },
    });
    actions.push({ type: 'ensureOAuthClient', partner: r.metadata.name, clientId, queue });
  } else {
    // An inactive partner keeps its queue (and what is in it) but receives nothing new.
    actions.push({
      type: 'unbindPartnerTopology',
      topology: { name: r.metadata.name, commandQueue: queue },
    });
    actions.push({ type: 'removeOAuthClient', partner: r.metadata.name, clientId });
  }
  actions.push({ type: 'upsertPartner', resource: r });
  return { kind: 'apply', actions, commandQueue: queue };
}

/** Deletion: the rows are deactivated, not deleted — their history (tasks, requests) refers to them. */
function undo(o: Observed): Action[] {
  const name = o.metadata.name;
  if (o.kind === 'AllioIntegration') return [{ type: 'deactivateIntegration', name }];
  const spec = (o.spec ?? {}) as { commandQueue?: unknown; oauthClientId?: unknown };
  const queue =
    o.status?.commandQueue ??
    (typeof spec.commandQueue === 'string' ? spec.commandQueue : defaultCommandQueue(name));
  const clientId = typeof spec.oauthClientId === 'string' ? spec.oauthClientId : name;
  return [
    { type: 'unbindPartnerTopology', topology: { name, commandQueue: queue } },
    { type: 'removeOAuthClient', partner: name, clientId },
    { type: 'deactivatePartner', name },
  ];
}

/** How an action ended when the executor ran it. */
export type ActionOutcome =
  | { action: Action; result: 'done' }
  | { action: Action; result: 'failed'; error: string }
  /** The executor has no backend for this action (e.g. no authorization-server client configured). */
  | { action: Action; result: 'unsupported'; reason: string };

interface ConditionInput {
  type: string;
  status: Condition['status'];
  reason: string;
  message: string;
}

/** The conditions an apply produces: Ready overall, plus one per concern the resource has. */
function conditionsFor(o: Observed, p: Plan, outcomes: ActionOutcome[]): ConditionInput[] {
  if (p.kind === 'invalid') {
    return [
      { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: p.problems.join('; ') },
    ];
  }
  if (p.kind === 'skip') return [];
  const failed = outcomes.filter(
    (x): x is Extract<ActionOutcome, { result: 'failed' }> => x.result === 'failed',
  );
  if (p.kind === 'delete') {
    return [
      failed.length
        ? {
            type: 'Ready',
            status: 'False',
            reason: 'DeletionFailed',
            message: failed.map((f) => `${f.action.type}: ${f.error}`).join('; '),
          }
        : {
            type: 'Ready',
            status: 'False',
            reason: 'Deleting',
            message: 'undoing what the hub set up for this resource',
          },
    ];
  }
  const of = (types: Action['type'][]) => outcomes.filter((x) => types.includes(x.action.type));
  const concern = (
    type: string,
    types: Action['type'][],
    okReason: string,
    okMessage: string,
  ): ConditionInput | undefined => {
    const mine = of(types);
    if (mine.length === 0) return undefined;
    const bad = mine.find((x) => x.result === 'failed');
    if (bad && bad.result === 'failed') {
      return { type, status: 'False', reason: 'ApplyFailed', message: bad.error };
    }
    const unsupported = mine.find((x) => x.result === 'unsupported');
    if (unsupported && unsupported.result === 'unsupported') {
      return { type, status: 'Unknown', reason: 'NotManaged', message: unsupported.reason };
    }
    return { type, status: 'True', reason: okReason, message: okMessage };
  };
  const out: ConditionInput[] = [];
  const stored = concern(
    'Stored',
    ['upsertIntegration', 'upsertPartner'],
    'Upserted',
    'the hub database holds this resource',
  );
  if (stored) out.push(stored);
  if (o.kind === 'SmartHomePartner') {
    const q = p.kind === 'apply' ? p.commandQueue : undefined;
    const active = of(['assertPartnerTopology']).length > 0;
    const topo = concern(
      'TopologyReady',
      ['assertPartnerTopology', 'unbindPartnerTopology'],
      active ? 'Bound' : 'Unbound',
      active
        ? `queue ${q} is bound to the commands exchange`
        : `queue ${q} is kept but receives no commands (inactive)`,
    );
    if (topo) out.push(topo);
    const oauth = concern(
      'OAuthClientReady',
      ['ensureOAuthClient', 'removeOAuthClient'],
      active ? 'Registered' : 'Removed',
      active
        ? 'the partner can obtain access tokens'
        : 'the partner can no longer obtain access tokens',
    );
    if (oauth) out.push(oauth);
  }
  out.unshift(
    failed.length
      ? {
          type: 'Ready',
          status: 'False',
          reason: 'ApplyFailed',
          message: failed.map((f) => `${f.action.type}: ${f.error}`).join('; '),
        }
      : {
          type: 'Ready',
          status: 'True',
          reason: 'Reconciled',
          message: 'the hub matches this resource',
        },
  );
  return out;
}

/**
 * The status to write: conditions keep their lastTransitionTime while their status stays the same
 * (Kubernetes convention), observedGeneration says which spec they describe.
 */
export function nextStatus(
  o: Observed,
  p: Plan,
  outcomes: ActionOutcome[],
  now: Date,
): ResourceStatus {
  const previous = new Map((o.status?.conditions ?? []).map((c) => [c.type, c]));
  const generation = o.metadata.generation;
  const conditions = conditionsFor(o, p, outcomes).map((c): Condition => {
    const before = previous.get(c.type);
    return {
      ...c,
      lastTransitionTime:
        before && before.status === c.status ? before.lastTransitionTime : now.toISOString(),
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    };
  });
  const status: ResourceStatus = {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    conditions,
  };
  if (o.kind === 'SmartHomePartner') {
    // Remember the queue only once it was really bound or unbound; otherwise keep the old one so a
    // later pass can still unbind it.
    const topoFailed = outcomes.some(
      (x) =>
        x.result === 'failed' &&
        (x.action.type === 'assertPartnerTopology' || x.action.type === 'unbindPartnerTopology'),
    );
    const q = p.kind === 'apply' && !topoFailed ? p.commandQueue : o.status?.commandQueue;
    if (q) status.commandQueue = q;
  }
  return status;
}

/** Whether writing `next` would change what the resource already says (avoids a write per resync). */
export function statusChanged(current: ResourceStatus | undefined, next: ResourceStatus): boolean {
  const strip = (s: ResourceStatus | undefined) => ({
    observedGeneration: s?.observedGeneration,
    commandQueue: s?.commandQueue,
    conditions: (s?.conditions ?? [])
      .map(({ type, status, reason, message, observedGeneration }) => ({
        type,
        status,
        reason,
        message,
        observedGeneration,
      }))
      .sort((a, b) => a.type.localeCompare(b.type)),
  });
  return JSON.stringify(strip(current)) !== JSON.stringify(strip(next));
}
