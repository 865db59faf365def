// The smart-home RabbitMQ topology, declared by the code at start (every declaration is
// idempotent): a direct exchange for commands with one quorum queue per partner, a topic exchange
// for replies feeding each installation's own reply queue, and a dead-letter exchange and queue for
// messages that cannot be parsed or processed. The exchanges, the partner queues and the dead
// letters are the vhost's; the reply queue is the installation's (HUB_INSTALLATION).
import type { Channel } from 'amqp-connection-manager';

export const COMMANDS_EXCHANGE = 'smart-home.commands';
export const REPLIES_EXCHANGE = 'smart-home.replies';
export const DEAD_LETTER_EXCHANGE = 'smart-home.dlx';
export const DEAD_LETTER_QUEUE = 'smart-home.dead-letter';
/** The reply queue of the installation without a name (HUB_INSTALLATION unset). */
export const REPLIES_QUEUE = 'smart-home.replies';

/**
 * The reply queue of an installation. Every installation on a vhost binds its own queue to the
 * replies exchange, so each receives every partner reply and settles those of its own commands
 * (another installation's reply names a command it does not know: acknowledged, counted `unknown`);
 * a queue shared by two installations would hand each reply to one of them at random.
 */
export const repliesQueue = (installation?: string): string =>
  installation ? `${REPLIES_QUEUE}.${installation}` : REPLIES_QUEUE;

/**
 * A message redelivered this many times (its consumer kept crashing or giving it back) is
 * dead-lettered instead of blocking the queue. Transient failures are retried in the consumer
 * before a message is given back, so 20 deliveries span minutes of outage.
 */
export const DELIVERY_LIMIT = 20;

const quorum = {
  durable: true,
  arguments: {
    'x-queue-type': 'quorum',
    'x-dead-letter-exchange': DEAD_LETTER_EXCHANGE,
    'x-delivery-limit': DELIVERY_LIMIT,
  },
};

export interface PartnerTopology {
  /** Routing key of its commands and of its replies. */
  name: string;
  commandQueue: string;
}

/** The exchanges and the dead-letter queue: the vhost's, shared by every installation on it. */
export async function assertBaseTopology(ch: Channel): Promise<void> {
  await ch.assertExchange(DEAD_LETTER_EXCHANGE, 'fanout', { durable: true });
  await ch.assertQueue(DEAD_LETTER_QUEUE, {
    durable: true,
    arguments: { 'x-queue-type': 'quorum' },
  });
  await ch.bindQueue(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE, '');
  await ch.assertExchange(COMMANDS_EXCHANGE, 'direct', { durable: true });
  await ch.assertExchange(REPLIES_EXCHANGE, 'topic', { durable: true });
}

/** The base topology and an installation's reply queue (declared only by its reply consumer). */
export async function assertRepliesTopology(
  ch: Channel,
  queue: string = REPLIES_QUEUE,
): Promise<void> {
  await assertBaseTopology(ch);
  await ch.assertQueue(queue, quorum);
  // Partners publish replies with their own name as the routing key; the hub takes them all.
  await ch.bindQueue(queue, REPLIES_EXCHANGE, '#');
}

/** A partner's command queue, bound to the commands exchange under the partner's name. */
export async function assertPartnerTopology(ch: Channel, p: PartnerTopology): Promise<void> {
  // Declared again here so that this setup never depends on another having run first.
  await ch.assertExchange(DEAD_LETTER_EXCHANGE, 'fanout', { durable: true });
  await ch.assertExchange(COMMANDS_EXCHANGE, 'direct', { durable: true });
  await ch.assertQueue(p.commandQueue, quorum);
  await ch.bindQueue(p.commandQueue, COMMANDS_EXCHANGE, p.name);
}

/** Unbinds a removed partner's queue; the queue itself stays until an operator drains and deletes it. */
export async function unbindPartnerTopology(ch: Channel, p: PartnerTopology): Promise<void> {
  await ch.unbindQueue(p.commandQueue, COMMANDS_EXCHANGE, p.name);
}
