// Carries out the reconciler's actions: database rows through the same functions `hub apply`
// uses, RabbitMQ topology through the mq-bridge's declarations, finalizers through Kubernetes.
import type { Knex } from 'knex';
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel } from 'amqplib';
import { deactivateIntegration, upsertIntegration } from '../domains/allio/integrations.js';
import type { SecretReader } from '../domains/allio/webhook-key.js';
import { deactivatePartner, upsertPartner } from '../domains/smart-home/partners.js';
import {
  assertBaseTopology,
  assertPartnerTopology,
  unbindPartnerTopology,
} from '../contracts/smart-home-topology.js';
import { createChannel } from '../core/amqp.js';
import { toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { OutboundPolicy } from '../core/outbound.js';
import type { Action, ActionOutcome } from './reconcile.js';

/** The authorization server's admin side for partner clients; provided by the auth integration. */
export interface OAuthClientRegistry {
  ensureClient(o: { partner: string; clientId: string; queue: string }): Promise<void>;
  removeClient(o: { partner: string; clientId: string }): Promise<void>;
}

interface FinalizerWriter {
  add(): Promise<void>;
  remove(): Promise<void>;
}

/** Runs topology declarations once on the live channel (not as a setup re-run on every reconnect). */
export class TopologyRunner {
  private readonly channel: ChannelWrapper;

  constructor(
    private readonly conn: AmqpConnectionManager,
    logger: Logger,
  ) {
    this.channel = createChannel(conn, logger, {
      name: 'operator-topology',
      json: false,
      setup: (ch: ConfirmChannel) => assertBaseTopology(ch),
    });
  }

  async run(fn: (ch: ConfirmChannel) => Promise<void>): Promise<void> {
    if (!this.conn.isConnected()) {
      throw new Error('not connected to RabbitMQ; the topology change will be retried');
    }
    await this.channel.waitForConnect();
    const once = (ch: ConfirmChannel) => fn(ch);
    try {
      await this.channel.addSetup(once);
    } finally {
      await this.channel.removeSetup(once);
    }
  }

  close(): Promise<void> {
    return this.channel.close();
  }
}

export interface ExecutorDeps {
  db: Knex;
  topology: Pick<TopologyRunner, 'run'>;
  /** Reads the Secrets resources reference (an AllioIntegration's webhookKeySecretRef). */
  secrets?: SecretReader;
  /** Absent until the hub manages authorization-server clients; the actions then report NotManaged. */
  oauthClients?: OAuthClientRegistry;
  /** The outbound policy allio-sync applies: an API URL it would refuse is refused when applied. */
  outbound?: Pick<OutboundPolicy, 'check'>;
}

const NO_OAUTH =
  'partner clients at the authorization server are not managed by the operator yet; create the client (and its queue permissions) in the authorization server';

async function runOne(
  a: Action,
  d: ExecutorDeps,
  finalizers: FinalizerWriter,
): Promise<ActionOutcome> {
  switch (a.type) {
    case 'addFinalizer':
      await finalizers.add();
      break;
    case 'removeFinalizer':
      await finalizers.remove();
      break;
    case 'upsertIntegration':
      d.outbound?.check('allio', a.resource.spec.apiBaseUrl);
      await upsertIntegration(d.db, a.resource, d.secrets);
      break;
    case 'deactivateIntegration':
      await deactivateIntegration(d.db, a.name);
      break;
    case 'upsertPartner':
      await upsertPartner(d.db, a.resource);
      break;
    case 'deactivatePartner':
      await deactivatePartner(d.db, a.name);
      break;
    case 'assertPartnerTopology':
      await d.topology.run((ch) => assertPartnerTopology(ch, a.topology));
      break;
    case 'unbindPartnerTopology':
      await d.topology.run((ch) => unbindPartnerTopology(ch, a.topology));
      break;
    case 'ensureOAuthClient':
      if (!d.oauthClients) return { action: a, result: 'unsupported', reason: NO_OAUTH };
      await d.oauthClients.ensureClient(a);
      break;
    case 'removeOAuthClient':
      if (!d.oauthClients) return { action: a, result: 'unsupported', reason: NO_OAUTH };
      await d.oauthClients.removeClient(a);
      break;
  }
  return { action: a, result: 'done' };
}

/**
 * Runs actions in order and stops at the first failure: later actions may depend on earlier ones
 * (the finalizer must be in place before anything is created; it is released only after the undo).
 */
export async function execute(
  actions: Action[],
  d: ExecutorDeps,
  finalizers: FinalizerWriter,
): Promise<ActionOutcome[]> {
  const out: ActionOutcome[] = [];
  for (const a of actions) {
    try {
      out.push(await runOne(a, d, finalizers));
    } catch (thrown) {
      out.push({ action: a, result: 'failed', error: toError(thrown).message });
      break;
    }
  }
  return out;
}
