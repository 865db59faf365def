// The operator's pure decisions: which actions a resource needs, and which status it ends with.
import { describe, expect, test } from '@jest/globals';
import { decide, heldLease } from './lease.js';
import {
  FINALIZER,
  nextStatus,
  plan,
  statusChanged,
  type Action,
  type ActionOutcome,
  type Observed,
  type Plan,
} from './reconcile.js';

const integration = (
  over: Partial<Observed> = {},
  spec: Record<string, unknown> = {},
): Observed => ({
  apiVersion: 'integration-hub.io/v1alpha1',
  kind: 'AllioIntegration',
  metadata: {
    name: 'residence-north',
    namespace: 'hub',
    generation: 3,
    resourceVersion: '10',
    finalizers: [FINALIZER],
  },
  spec: {
    integrationUuid: '3f1e9a52-6c1d-4b8e-9f0a-2b7c5d4e6a10',
    webhookKey: '7TqXfY2mLk9PzR4sVb8N',
    apiBaseUrl: 'https://api.allio.example/v1',
    apiTokenSecretRef: { name: 'allio-residence-north', key: 'token' },
    ...spec,
  },
  ...over,
});

const partner = (over: Partial<Observed> = {}, spec: Record<string, unknown> = {}): Observed => ({
  apiVersion: 'integration-hub.io/v1alpha1',
  kind: 'SmartHomePartner',
  metadata: { name: 'domofon-plus', namespace: 'hub', generation: 1, finalizers: [FINALIZER] },
  spec: { services: ['intercom', 'barrier'], ...spec },
  ...over,
});

const types = (p: Plan) =>
  p.kind === 'apply' || p.kind === 'delete' ? p.actions.map((a) => a.type) : p.kind;
const done = (p: Plan): ActionOutcome[] =>
  p.kind === 'apply' || p.kind === 'delete'
    ? p.actions.map((action) => ({ action, result: 'done' as const }))
    : [];
const NOW = new Date('2026-11-24T10:00:00Z');

describe('operator plan', () => {
  test('a new integration first gets the finalizer, then its row, with defaults from the shared schema', () => {
    const p = plan(
      integration({ metadata: { name: 'residence-north', namespace: 'hub', generation: 1 } }),
    );
    expect(types(p)).toEqual(['addFinalizer', 'upsertIntegration']);
    const upsert = (p as { actions: Action[] }).actions[1] as Extract<
      Action,
      { type: 'upsertIntegration' }
    >;
    expect(upsert.resource.spec).toEqual(
      expect.objectContaining({ deletionControl: false, active: true }),
    );
    expect(upsert.resource.metadata.name).toBe('residence-north');
  });

  test('an integration that holds the finalizer is upserted again on every pass (drift repair)', () => {
    expect(types(plan(integration()))).toEqual(['upsertIntegration']);
  });

  test("an integration with both token forms is invalid, with the schema's message, and nothing is written", () => {
    const p = plan(integration({}, { apiToken: 'inline' }));
    expect(p).toEqual({
      kind: 'invalid',
      problems: ['spec.apiToken set exactly one of apiToken or apiTokenSecretRef'],
    });
  });

  test("an integration referencing another integration's Secret is invalid with a status that names the bound Secret, and nothing is written", () => {
    const p = plan(
      integration({}, { apiTokenSecretRef: { name: 'allio-residence-south', key: 'token' } }),
    );
    expect(p).toEqual({
      kind: 'invalid',
      problems: [
        'spec.apiTokenSecretRef.name must be allio-residence-north: an integration may only read the Secret bound to it by name',
      ],
    });
    const status = nextStatus(integration(), p, [], new Date('2026-12-01T00:00:00Z'));
    expect(status.conditions?.[0]).toMatchObject({
      type: 'Ready',
      status: 'False',
      reason: 'InvalidSpec',
      message: expect.stringContaining('allio-residence-north'),
    });
  });

  test('a deleted integration is deactivated, then its finalizer released', () => {
    const p = plan(
      integration({
        metadata: {
          name: 'residence-north',
          namespace: 'hub',
          finalizers: ['other', FINALIZER],
          deletionTimestamp: '2026-11-24T09:00:00Z',
        },
      }),
    );
    expect(p).toEqual({
      kind: 'delete',
      actions: [
        { type: 'deactivateIntegration', name: 'residence-north' },
        { type: 'removeFinalizer' },
      ],
    });
  });

  test('a deleted resource without our finalizer is skipped with a reason', () => {
    const p = plan(
      integration({
        metadata: {
          name: 'x',
          namespace: 'hub',
          finalizers: ['other'],
          deletionTimestamp: '2026-11-24T09:00:00Z',
        },
      }),
    );
    expect(p).toEqual({ kind: 'skip', reason: 'being deleted and holds no finalizer of ours' });
  });

  test('an active partner gets its queue bound, its OAuth client and its row; defaults name queue and client', () => {
    const p = plan(partner());
    expect(p.kind === 'apply' && p.actions).toEqual([
      {
        type: 'assertPartnerTopology',
        topology: { name: 'domofon-plus', commandQueue: 'partner.domofon-plus.commands' },
      },
      {
        type: 'ensureOAuthClient',
        partner: 'domofon-plus',
        clientId: 'domofon-plus',
        queue: 'partner.domofon-plus.commands',
      },
      expect.objectContaining({ type: 'upsertPartner' }),
    ]);
  });

  test('a renamed command queue is unbound before the new one is bound', () => {
    const p = plan(
      partner({ status: { commandQueue: 'partner.old.commands' } }, { commandQueue: 'domofon.v2' }),
    );
    expect(p.kind === 'apply' && p.actions.slice(0, 2)).toEqual([
      {
        type: 'unbindPartnerTopology',
        topology: { name: 'domofon-plus', commandQueue: 'partner.old.commands' },
      },
      {
        type: 'assertPartnerTopology',
        topology: { name: 'domofon-plus', commandQueue: 'domofon.v2' },
      },
    ]);
    expect(p.kind === 'apply' && p.commandQueue).toBe('domofon.v2');
  });

  test('an inactive partner keeps its queue but is unbound and loses its OAuth client', () => {
    expect(types(plan(partner({}, { active: false, oauthClientId: 'dp-client' })))).toEqual([
      'unbindPartnerTopology',
      'removeOAuthClient',
      'upsertPartner',
    ]);
  });

  test('a deleted partner is unbound from the queue it was last bound to, loses its client, is deactivated, then released', () => {
    const p = plan(
      partner(
        {
          metadata: {
            name: 'domofon-plus',
            namespace: 'hub',
            finalizers: [FINALIZER],
            deletionTimestamp: '2026-11-24T09:00:00Z',
          },
          status: { commandQueue: 'partner.bound.commands' },
        },
        { oauthClientId: 'dp-client' },
      ),
    );
    expect(p).toEqual({
      kind: 'delete',
      actions: [
        {
          type: 'unbindPartnerTopology',
          topology: { name: 'domofon-plus', commandQueue: 'partner.bound.commands' },
        },
        { type: 'removeOAuthClient', partner: 'domofon-plus', clientId: 'dp-client' },
        { type: 'deactivatePartner', name: 'domofon-plus' },
        { type: 'removeFinalizer' },
      ],
    });
  });

  test('a partner naming an unknown service or a reserved queue is invalid', () => {
    const p = plan(partner({}, { services: ['elevator'], commandQueue: 'amq.partner' }));
    expect(p.kind).toBe('invalid');
    expect(p.kind === 'invalid' && p.problems.join('\n')).toMatch(
      /spec\.services\.0[\s\S]*spec\.commandQueue must not start with "amq\."/,
    );
  });
});

describe('operator status', () => {
  test('a fully applied partner is Ready, Stored and TopologyReady; an unmanaged OAuth client is Unknown, not True', () => {
    const o = partner();
    const p = plan(o);
    const outcomes = done(p).map((x) =>
      x.action.type === 'ensureOAuthClient'
        ? { action: x.action, result: 'unsupported' as const, reason: 'not managed' }
        : x,
    );
    const s = nextStatus(o, p, outcomes, NOW);
    expect(s.commandQueue).toBe('partner.domofon-plus.commands');
    expect(s.observedGeneration).toBe(1);
    expect(s.conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'True', 'Reconciled'],
      ['Stored', 'True', 'Upserted'],
      ['TopologyReady', 'True', 'Bound'],
      ['OAuthClientReady', 'Unknown', 'NotManaged'],
    ]);
    expect(
      s.conditions?.every(
        (c) => c.lastTransitionTime === NOW.toISOString() && c.observedGeneration === 1,
      ),
    ).toBe(true);
  });

  test('a failed topology step makes Ready false with the error and keeps the previously bound queue', () => {
    const o = partner(
      { status: { commandQueue: 'partner.old.commands' } },
      { commandQueue: 'new.q' },
    );
    const p = plan(o);
    const actions = (p as { actions: Action[] }).actions;
    const outcomes: ActionOutcome[] = [
      { action: actions[0]!, result: 'done' },
      { action: actions[1]!, result: 'failed', error: 'not connected to RabbitMQ' },
    ];
    const s = nextStatus(o, p, outcomes, NOW);
    expect(s.conditions?.slice(0, 2).map((c) => [c.type, c.status, c.reason, c.message])).toEqual([
      ['Ready', 'False', 'ApplyFailed', 'assertPartnerTopology: not connected to RabbitMQ'],
      ['TopologyReady', 'False', 'ApplyFailed', 'not connected to RabbitMQ'],
    ]);
    expect(s.commandQueue).toBe('partner.old.commands');
  });

  test('an invalid spec is reported as InvalidSpec with the problems', () => {
    const o = integration({}, { webhookKey: 'short' });
    const s = nextStatus(o, plan(o), [], NOW);
    expect(s.conditions).toEqual([
      expect.objectContaining({
        type: 'Ready',
        status: 'False',
        reason: 'InvalidSpec',
        message: expect.stringContaining('spec.webhookKey must be at least 16 characters'),
      }),
    ]);
  });

  test('a spec with 100,000 bad services and 20,000 labels is InvalidSpec with a short message', () => {
    const o = partner(
      {},
      { services: Array.from({ length: 100_000 }, () => 'elevator'), extra: 'x'.repeat(100_000) },
    );
    o.metadata = {
      ...o.metadata,
      labels: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`l${i}`, 'x'])),
    };
    const p = plan(o);
    expect(p.kind === 'invalid' && p.problems.length).toBeLessThanOrEqual(21);
    const s = nextStatus(o, p, [], NOW);
    expect(s.conditions?.[0]?.message).toMatch(
      /spec\.services must name each service at most once/,
    );
    expect(s.conditions?.[0]?.message.length).toBeLessThan(2_000);
  });

  test('a failed undo during deletion says DeletionFailed', () => {
    const o = integration({
      metadata: { name: 'n', namespace: 'hub', finalizers: [FINALIZER], deletionTimestamp: 'x' },
    });
    const p = plan(o);
    const s = nextStatus(
      o,
      p,
      [
        {
          action: { type: 'deactivateIntegration', name: 'n' },
          result: 'failed',
          error: 'db down',
        },
      ],
      NOW,
    );
    expect(s.conditions?.[0]).toEqual(
      expect.objectContaining({
        reason: 'DeletionFailed',
        message: 'deactivateIntegration: db down',
      }),
    );
  });

  test('a condition keeps its transition time while its status holds, and takes a new one when it flips', () => {
    const earlier = '2026-11-01T00:00:00.000Z';
    const o = integration({
      status: {
        observedGeneration: 2,
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'Reconciled',
            message: 'm',
            lastTransitionTime: earlier,
          },
          {
            type: 'Stored',
            status: 'False',
            reason: 'ApplyFailed',
            message: 'db',
            lastTransitionTime: earlier,
          },
        ],
      },
    });
    const p = plan(o);
    const s = nextStatus(o, p, done(p), NOW);
    const byType = Object.fromEntries(
      (s.conditions ?? []).map((c) => [c.type, c.lastTransitionTime]),
    );
    expect(byType).toEqual({ Ready: earlier, Stored: NOW.toISOString() });
  });

  test('an unchanged status is not written again; a new generation or message is', () => {
    const o = integration();
    const p = plan(o);
    const s = nextStatus(o, p, done(p), NOW);
    const later = nextStatus({ ...o, status: s }, p, done(p), new Date('2026-11-25T00:00:00Z'));
    expect(statusChanged(s, later)).toBe(false);
    expect(statusChanged(s, { ...later, observedGeneration: 4 })).toBe(true);
    expect(statusChanged(undefined, later)).toBe(true);
  });
});

describe('operator lease decision', () => {
  const me = 'operator-a';
  test('no Lease: create it; ours: renew; another holder within its term: wait; expired or empty: take over', () => {
    expect(decide(undefined, me, NOW, 15)).toEqual({ kind: 'create' });
    expect(decide({ holderIdentity: me, renewTime: '2026-11-24T09:00:00Z' }, me, NOW, 15)).toEqual({
      kind: 'renew',
    });
    expect(
      decide(
        {
          holderIdentity: 'operator-b',
          renewTime: new Date(NOW.getTime() - 5_000),
          leaseDurationSeconds: 15,
        },
        me,
        NOW,
        15,
      ),
    ).toEqual({ kind: 'wait', holder: 'operator-b', expiresInMs: 10_000 });
    expect(
      decide(
        {
          holderIdentity: 'operator-b',
          renewTime: new Date(NOW.getTime() - 15_000),
          leaseDurationSeconds: 15,
        },
        me,
        NOW,
        15,
      ),
    ).toEqual({ kind: 'takeover', from: 'operator-b' });
    expect(decide({ holderIdentity: null }, me, NOW, 15)).toEqual({ kind: 'takeover', from: '' });
  });

  test("the holder's own duration counts, not ours", () => {
    expect(
      decide(
        {
          holderIdentity: 'b',
          renewTime: new Date(NOW.getTime() - 20_000),
          leaseDurationSeconds: 60,
        },
        me,
        NOW,
        15,
      ).kind,
    ).toBe('wait');
  });

  test('a takeover counts a transition and resets the acquire time; a renewal keeps both', () => {
    const first = heldLease(undefined, 'l', 'hub', me, NOW, 15, false);
    expect(first.spec).toEqual(
      expect.objectContaining({
        holderIdentity: me,
        leaseTransitions: 0,
        acquireTime: NOW,
        renewTime: NOW,
      }),
    );
    const later = new Date(NOW.getTime() + 5_000);
    const renewed = heldLease(first, 'l', 'hub', me, later, 15, false);
    expect(renewed.spec).toEqual(
      expect.objectContaining({ leaseTransitions: 0, acquireTime: NOW, renewTime: later }),
    );
    const taken = heldLease(
      { ...first, metadata: { name: 'l', resourceVersion: '7' } },
      'l',
      'hub',
      'operator-b',
      later,
      15,
      true,
    );
    expect(taken.spec).toEqual(
      expect.objectContaining({
        holderIdentity: 'operator-b',
        leaseTransitions: 1,
        acquireTime: later,
      }),
    );
    expect(taken.metadata?.resourceVersion).toBe('7');
  });
});
