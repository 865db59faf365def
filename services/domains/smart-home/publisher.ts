// Publishes commands to partners on a confirm channel: a publish resolves only when the broker has
// taken responsibility for the message (persisted in the partner's quorum queue), and rejects on a
// nack, on a timeout, or when no queue is bound for the partner (mandatory + basic.return).
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel, Message } from 'amqplib';
import { toError } from '../../core/errors.js';
import { createChannel } from '../../core/amqp.js';
import type { Logger } from '../../core/logger.js';
import type { CommandMessage } from '../../contracts/smart-home-messages.js';
import type { SmartHomeMetrics } from './metrics.js';
import {
  assertBaseTopology,
  assertPartnerTopology,
  COMMANDS_EXCHANGE,
  type PartnerTopology,
} from '../../contracts/smart-home-topology.js';

class UnroutableError extends Error {
  constructor(partner: string) {
    super(`no queue is bound for partner ${partner} on ${COMMANDS_EXCHANGE}`);
    this.name = 'UnroutableError';
  }
}

export class CommandPublisher {
  readonly channel: ChannelWrapper;
  private readonly declared = new Map<string, string>();
  private readonly returned = new Set<string>();

  constructor(
    conn: AmqpConnectionManager,
    private readonly logger: Logger,
    private readonly metrics: SmartHomeMetrics,
    publishTimeoutMs = 5_000,
  ) {
    this.channel = createChannel(conn, logger, {
      name: 'smart-home-commands',
      confirm: true,
      json: false,
      publishTimeout: publishTimeoutMs,
      setup: async (ch: ConfirmChannel) => {
        ch.on('return', (msg: Message) => {
          const id = msg.properties.messageId as string | undefined;
          if (id) this.returned.add(id);
        });
        await assertBaseTopology(ch);
      },
    });
  }

  /** Declares the partner's queue once per process (and again after every reconnect). */
  async ensurePartner(p: PartnerTopology): Promise<void> {
    if (this.declared.get(p.name) === p.commandQueue) return;
    this.declared.set(p.name, p.commandQueue);
    try {
      await this.channel.addSetup((ch: ConfirmChannel) => assertPartnerTopology(ch, p));
    } catch (thrown) {
      this.declared.delete(p.name);
      throw toError(thrown);
    }
  }

  /**
   * Publishes `command` to `partner` and waits for the broker's confirm. `expirationMs` drops a
   * command nobody consumed in time (an open command must not open a door minutes later).
   */
  async publish(
    partner: PartnerTopology,
    command: CommandMessage,
    expirationMs?: number,
  ): Promise<void> {
    await this.ensurePartner(partner);
    try {
      await this.channel.publish(
        COMMANDS_EXCHANGE,
        partner.name,
        Buffer.from(JSON.stringify(command)),
        {
          persistent: true,
          mandatory: true,
          contentType: 'application/json',
          messageId: command.messageId,
          correlationId: command.correlationId,
          type: command.type,
          timestamp: Math.floor(Date.now() / 1000),
          appId: 'integration-hub',
          ...(expirationMs ? { expiration: String(expirationMs) } : {}),
        },
      );
    } catch (thrown) {
      this.metrics.commandsPublished.inc({ type: command.type, result: 'failed' });
      throw new Error(`publishing ${command.type} to ${partner.name} failed`, { cause: thrown });
    }
    // basic.return arrives before the confirm of the same message.
    if (this.returned.delete(command.messageId)) {
      this.metrics.commandsPublished.inc({ type: command.type, result: 'unroutable' });
      this.declared.delete(partner.name);
      throw new UnroutableError(partner.name);
    }
    this.metrics.commandsPublished.inc({ type: command.type, result: 'confirmed' });
  }

  async close(): Promise<void> {
    await this.channel
      .close()
      .catch((e: unknown) =>
        this.logger.warn({ err: toError(e) }, 'closing the command channel failed'),
      );
  }
}
