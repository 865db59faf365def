// The smart-home RabbitMQ topology, declared by the code at start (every declaration is
// idempotent): a direct exchange for commands with one quorum queue per partner, a topic exchange
// for replies feeding the hub's reply queue, and a dead-letter exchange and queue for messages
// that cannot be parsed or processed.
import type { Channel } from 'amqp-connection-manager';

export const COMMANDS_EXCHANGE = 'smart-home.commands';
export const REPLIES_EXCHANGE = 'smart-home.replies';
export const DEAD_LETTER_EXCHANGE = 'smart-home.dlx';
export const DEAD_LETTER_QUEUE = 'smart-home.dead-letter';
export const REPLIES_QUEUE = 'smart-home.replies';

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

/** Exchanges, the reply queue and the dead-letter queue. */
export async function assertBaseTopology(ch: Channel): Promise<void> {
  await ch.assertExchange(DEAD_LETTER_EXCHANGE, 'fanout', { durable: true });
  await ch.assertQueue(DEAD_LETTER_QUEUE, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await ch.bindQueue(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE, '');
  await ch.assertExchange(COMMANDS_EXCHANGE, 'direct', { durable: true });
  await ch.assertExchange(REPLIES_EXCHANGE, 'topic', { durable: true });
  await ch.assertQueue(REPLIES_QUEUE, quorum);
  // Partners publish replies with their own name as the routing key; the hub takes them all.
  await ch.bindQueue(REPLIES_QUEUE, REPLIES_EXCHANGE, '#');
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
