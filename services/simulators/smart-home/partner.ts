// A smart-home partner as a real AMQP client: consumes its command queue and answers each command
// on the replies exchange, with a configurable delay, failure rate and silence (no reply at all).
// Used by the tests, by `npm start -- --simulators` and by the benchmark. It consumes and acknowledges
// through the partner example client, as partners do.
import type { AmqpConnectionManager } from 'amqp-connection-manager';
import type { ConfirmChannel } from 'amqplib';
import {
  connectPartner,
  consumeCommands,
  type CommandConsumer,
  type CommandDelivery,
  type TokenSource,
} from '../../../docs/examples/partner-client.js';
import {
  buildReply,
  commandMessage,
  type CommandMessage,
} from '../../contracts/smart-home-messages.js';
import {
  assertBaseTopology,
  assertPartnerTopology,
  REPLIES_EXCHANGE,
} from '../../contracts/smart-home-topology.js';
import { connectAmqp, toError, type Logger } from '../process-kit.js';

export interface PartnerBehaviour {
  /** Milliseconds before replying. */
  delayMs: number;
  /** Share of commands answered with `failure` (0..1). */
  failureRate: number;
  /** Consume commands but never reply (a partner that went quiet). */
  silent: boolean;
}

interface PartnerAuth {
  /** Access tokens from the authorization server (client credentials). */
  tokens: TokenSource;
  /** CA certificate of the broker's TLS listener. */
  ca?: string;
}

interface PartnerSimulatorOptions {
  /** With `auth`: `amqps://host:port/vhost` without credentials, as a partner connects. */
  amqpUrl: string;
  /** Connect as a partner does in production: AMQPS with an access token, refreshed before expiry. */
  auth?: PartnerAuth;
  /** The partner's name: the routing key of its commands and of its replies. */
  partner: string;
  commandQueue: string;
  logger: Logger;
  behaviour?: Partial<PartnerBehaviour>;
  /** Declare the exchanges and the queue (local runs); a partner under token rules only consumes. */
  declareTopology?: boolean;
  prefetch?: number;
  random?: () => number;
}

interface ReceivedCommand {
  command: CommandMessage;
  receivedAt: number;
}

export class PartnerSimulator {
  readonly received: ReceivedCommand[] = [];
  behaviour: PartnerBehaviour;
  private conn: AmqpConnectionManager | undefined;
  private consumer: CommandConsumer | undefined;
  private stopping = false;
  /** Wakes the replies waiting out their delay, so that a stop does not wait for them. */
  private readonly sleepers = new Set<() => void>();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly o: PartnerSimulatorOptions) {
    this.behaviour = { delayMs: 0, failureRate: 0, silent: false, ...o.behaviour };
  }

  async start(): Promise<void> {
    const name = `partner-simulator ${this.o.partner}`;
    const auth = this.o.auth;
    this.conn = auth
      ? connectPartner({
          url: this.o.amqpUrl,
          tokens: auth.tokens,
          ca: auth.ca,
          connectionName: name,
          onWarning: (message, err) =>
            this.o.logger.warn({ err, partner: this.o.partner }, `partner simulator: ${message}`),
        })
      : connectAmqp(this.o.amqpUrl, this.o.logger, { name });
    const topology = { name: this.o.partner, commandQueue: this.o.commandQueue };
    this.consumer = consumeCommands(this.conn, {
      queue: this.o.commandQueue,
      prefetch: this.o.prefetch ?? 100,
      setup: async (ch: ConfirmChannel) => {
        if (this.o.declareTopology ?? true) {
          await assertBaseTopology(ch);
          await assertPartnerTopology(ch, topology);
        }
      },
      onCommand: (delivery) => this.track(this.onCommand(delivery)),
      onWarning: (message, err) =>
        this.o.logger.warn({ err, partner: this.o.partner }, `partner simulator: ${message}`),
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const wake of this.sleepers) wake();
    await this.consumer?.cancel();
    await Promise.all(this.inFlight);
    await this.consumer?.channel.close().catch(() => undefined);
    await this.conn?.close();
  }

  private track(p: Promise<void>): void {
    const handled = p.catch((e: unknown) =>
      this.o.logger.warn({ err: toError(e) }, 'partner simulator: command handling failed'),
    );
    this.inFlight.add(handled);
    void handled.finally(() => this.inFlight.delete(handled));
  }

  /** Resolves after `ms`, or at once when the simulator stops. */
  private pause(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  private async onCommand(delivery: CommandDelivery): Promise<void> {
    const ch = this.consumer?.channel;
    if (!ch) return;
    const { msg } = delivery;
    let command: CommandMessage;
    try {
      command = commandMessage.parse(JSON.parse(msg.content.toString('utf8')));
    } catch (thrown) {
      this.o.logger.warn({ err: toError(thrown) }, 'partner simulator: unreadable command dropped');
      delivery.ack();
      return;
    }
    this.received.push({ command, receivedAt: Date.now() });
    const b = this.behaviour;
    if (b.silent) {
      delivery.ack();
      return;
    }
    if (b.delayMs > 0) await this.pause(b.delayMs);
    const fail = (this.o.random ?? Math.random)() < b.failureRate;
    const reply = buildReply(
      command,
      fail ? 'failure' : 'success',
      fail ? 'simulated partner failure' : undefined,
    );
    try {
      await ch.publish(REPLIES_EXCHANGE, this.o.partner, Buffer.from(JSON.stringify(reply)), {
        persistent: true,
        contentType: 'application/json',
        messageId: reply.messageId,
        correlationId: reply.correlationId,
        type: reply.type,
        timestamp: Math.floor(Date.now() / 1000),
      });
      delivery.ack();
    } catch (thrown) {
      this.o.logger.warn(
        { err: toError(thrown) },
        'partner simulator: reply not confirmed; the command will be redelivered',
      );
      delivery.nack(true);
    }
  }
}
