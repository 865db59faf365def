// RabbitMQ connections through amqp-connection-manager: it reconnects with backoff, re-runs each
// channel's setup (topology, consumers) after a reconnect, and holds publishes until confirmed.
import { randomUUID } from 'node:crypto';
import amqp, {
  type AmqpConnectionManager,
  type ChannelWrapper,
  type CreateChannelOpts,
} from 'amqp-connection-manager';
import type { Channel, ConsumeMessage, Options } from 'amqplib';
import { DependencyState, OUTAGE_REMINDER_MS } from './dependency-state.js';
import { toError } from './errors.js';
import { redactUrlPassword, type Logger } from './logger.js';

export type { AmqpConnectionManager };

/** The URL without its password, for logs. */
function redactAmqpUrl(url: string): string {
  return redactUrlPassword(url, 'AMQP URL');
}

/**
 * Consumes in flight and refused, per connection. RabbitMQ answers a consume on a quorum queue
 * whose replica is not running yet (declared a moment ago, on a fresh node, by another connection)
 * by closing the whole connection with 541 INTERNAL_ERROR; the queues in flight at that moment let
 * such a close be told apart from an outage, and be retried with one quiet line.
 */
class ConsumeWatch {
  readonly inFlight = new Set<string>();
  private readonly refused = new Map<
    string,
    { since: number; lastLoggedAt: number; times: number }
  >();

  constructor(
    private readonly logger: Logger,
    private readonly broker: string,
  ) {}

  /** The connection closed with 541 while consumes were in flight: true when that explains it. */
  refusedNow(now = Date.now()): boolean {
    if (this.inFlight.size === 0) return false;
    for (const queue of this.inFlight) {
      const r = this.refused.get(queue);
      if (!r) {
        this.refused.set(queue, { since: now, lastLoggedAt: now, times: 1 });
        this.logger.info(
          { broker: this.broker, queue },
          `rabbitmq refused a consumer: the queue is not ready yet after its declaration; retrying every ${RECONNECT_S} s`,
        );
        continue;
      }
      r.times++;
      if (now - r.lastLoggedAt < OUTAGE_REMINDER_MS) continue;
      r.lastLoggedAt = now;
      this.logger.warn(
        {
          broker: this.broker,
          queue,
          refusedForS: Math.round((now - r.since) / 1000),
          times: r.times,
        },
        'rabbitmq still refuses a consumer on this queue',
      );
    }
    return true;
  }

  consumed(queue: string): void {
    const r = this.refused.get(queue);
    if (!r) return;
    this.refused.delete(queue);
    this.logger.debug(
      { broker: this.broker, queue, times: r.times },
      'rabbitmq consumer started after refusals',
    );
  }
}

const watches = new WeakMap<AmqpConnectionManager, ConsumeWatch>();

/** The reconnect delay, also said in the log lines. */
const RECONNECT_S = 2;

function amqpCode(err: unknown): unknown {
  return typeof err === 'object' && err !== null && 'code' in err
    ? (err as { code: unknown }).code
    : undefined;
}

/**
 * A connection that logs one line per change of state (connected, lost, back, a reminder while
 * down) with the reason and no stack: a broker that is away is not a bug in this process.
 */
export function connectAmqp(
  url: string,
  logger: Logger,
  o: { name: string; heartbeatSeconds?: number; connectionOptions?: Record<string, unknown> },
): AmqpConnectionManager {
  const conn = amqp.connect([url], {
    heartbeatIntervalInSeconds: o.heartbeatSeconds ?? 10,
    reconnectTimeInSeconds: RECONNECT_S,
    // Nagle's algorithm holds small frames back waiting for an ACK; on a request/reply path that
    // added ~20 ms per hop (bare amqplib round trip at 500/s: p50 25 ms with it, 1.6 ms without).
    connectionOptions: {
      noDelay: true,
      clientProperties: { connection_name: o.name },
      ...o.connectionOptions,
    },
  });
  const where = redactAmqpUrl(url);
  const state = new DependencyState(logger, {
    name: 'rabbitmq',
    fields: { broker: where },
    effect: `reconnecting every ${RECONNECT_S} s (check the broker and AMQP_URL)`,
  });
  const watch = new ConsumeWatch(logger, where);
  watches.set(conn, watch);
  let connectedOnce = false;
  conn.on('connect', () => {
    if (!connectedOnce) logger.info({ broker: where }, 'rabbitmq connected');
    connectedOnce = true;
    state.up();
  });
  conn.on('disconnect', ({ err }) => {
    // Not an outage: a queue needs a moment after its declaration; the reconnect retries.
    if (amqpCode(err) === 541 && !state.isDown && watch.refusedNow()) return;
    state.down(toError(err).message, { event: 'disconnected' });
  });
  conn.on('connectFailed', ({ err }) =>
    state.down(toError(err).message, { event: 'connect_failed' }),
  );
  conn.on('blocked', ({ reason }) =>
    logger.warn({ reason }, 'rabbitmq blocked publishing (resource alarm)'),
  );
  conn.on('unblocked', () => logger.info('rabbitmq unblocked publishing'));
  return conn;
}

/**
 * Starts consuming `queue` on `ch` (inside a channel's setup, after the queue's declaration). When
 * the connection closes under the consume (see `ConsumeWatch`), it resolves with `undefined`:
 * the connection's own line says why, and the reconnect runs the setup, and this consume, again.
 */
async function consumeQueue(
  conn: AmqpConnectionManager,
  ch: Channel,
  queue: string,
  onMessage: (msg: ConsumeMessage | null) => void,
  options: Options.Consume = {},
): Promise<string | undefined> {
  const watch = watches.get(conn);
  watch?.inFlight.add(queue);
  try {
    const { consumerTag } = await ch.consume(queue, onMessage, options);
    watch?.consumed(queue);
    return consumerTag;
  } catch (thrown) {
    if (!conn.isConnected()) return undefined;
    throw thrown;
  } finally {
    watch?.inFlight.delete(queue);
  }
}

/**
 * A channel whose errors are logged instead of thrown at the process (an unlistened 'error' event
 * would crash it); amqp-connection-manager recreates the channel and re-runs its setup after a
 * reconnect. An error that only follows the connection's loss is left to the connection's line.
 */
export function createChannel(
  conn: AmqpConnectionManager,
  logger: Logger,
  opts: CreateChannelOpts,
): ChannelWrapper {
  const ch = conn.createChannel(opts);
  ch.on('error', (err: Error, info: { name: string }) => {
    const channel = info?.name ?? opts.name;
    if (!conn.isConnected()) {
      logger.debug({ reason: err.message, channel }, 'rabbitmq channel closed with its connection');
    } else {
      logger.warn(
        { err, channel },
        'rabbitmq channel error; it is re-created at the next reconnect',
      );
    }
  });
  return ch;
}

/** Readiness: the connection is up now. */
export async function pingAmqp(conn: AmqpConnectionManager): Promise<void> {
  if (!conn.isConnected()) throw new Error('not connected to RabbitMQ');
}

/** A message and the two ways to settle it, both on the channel that delivered it. */
export interface Delivery<C extends Channel = Channel> {
  readonly msg: ConsumeMessage;
  /** The channel the message came on (a dead letter can be published there). */
  readonly channel: C;
  /** `'channel_closed'` when that channel is gone: nothing was sent, and the broker redelivers the message. */
  ack(): SettleResult;
  nack(requeue: boolean): SettleResult;
}

export type SettleResult = 'settled' | 'channel_closed';

/**
 * Consumes a queue on every channel amqp-connection-manager opens for it: `setup` goes into the
 * channel's setup, which runs again after each reconnect, and each message is handed over with
 * ack/nack bound to the raw channel that delivered it.
 *
 * The manager's own `ChannelWrapper.ack(msg)` sends to whatever channel is current. A delivery tag
 * only means something on the channel that issued it: after a reconnect an old tag on the new
 * channel is either unknown (RabbitMQ closes the channel, 406 PRECONDITION_FAILED, and every
 * message in flight on it comes back) or names another message. So a message whose channel has
 * closed is not settled at all: the broker has already put it back, and handlers are idempotent.
 * Settling never throws: amqplib throws IllegalOperationError on a closed channel, and a throw
 * from a timer or an unawaited handler would end the process.
 */
export class QueueConsumer<C extends Channel = Channel> {
  /** The same tag on every channel: it is unique per channel, and cancel() names it. */
  private readonly tag = `hub-${randomUUID()}`;
  private current: C | undefined;
  private cancelled = false;

  constructor(
    private readonly o: {
      queue: string;
      prefetch: number;
      logger: Logger;
      /** The connection the channels belong to: a consume it refuses at first is retried quietly. */
      conn?: AmqpConnectionManager;
      /** Must not reject: it owns the delivery from here. */
      onMessage: (delivery: Delivery<C>) => void;
    },
  ) {}

  /** For the channel's setup function, after the topology: starts consuming on `ch`. */
  readonly setup = async (ch: C): Promise<void> => {
    if (this.cancelled) return;
    this.current = ch;
    const state = { closed: false, reported: false };
    ch.once('close', () => (state.closed = true));
    await ch.prefetch(this.o.prefetch);
    await this.consume(ch, state);
  };

  /** Stops new deliveries; messages already handed over can still be settled. */
  async cancel(): Promise<void> {
    this.cancelled = true;
    const ch = this.current;
    this.current = undefined;
    await ch?.cancel(this.tag).catch(() => undefined);
  }

  private async consume(ch: C, state: { closed: boolean; reported: boolean }): Promise<void> {
    const onMessage = (msg: ConsumeMessage | null): void => {
      if (msg) {
        this.o.onMessage(this.delivery(ch, msg, state));
        return;
      }
      // The broker cancelled the consumer (the queue was deleted or moved): consume again; if the
      // queue is gone the channel closes and the reconnect's setup declares it.
      this.o.logger.warn(
        { queue: this.o.queue },
        'rabbitmq cancelled the consumer; consuming again',
      );
      if (!state.closed && !this.cancelled) {
        this.consume(ch, state).catch((e: unknown) =>
          this.o.logger.warn(
            { err: toError(e), queue: this.o.queue },
            'consuming again failed; waiting for the reconnect',
          ),
        );
      }
    };
    const options = { noAck: false, consumerTag: this.tag };
    if (this.o.conn) await consumeQueue(this.o.conn, ch, this.o.queue, onMessage, options);
    else await ch.consume(this.o.queue, onMessage, options);
  }

  private delivery(
    ch: C,
    msg: ConsumeMessage,
    state: { closed: boolean; reported: boolean },
  ): Delivery<C> {
    const settle = (send: () => void): SettleResult => {
      if (!state.closed) {
        try {
          send();
          return 'settled';
        } catch (thrown) {
          // IllegalOperationError: the channel is closing, its 'close' not emitted yet.
          if (!state.reported) {
            this.o.logger.debug(
              { err: toError(thrown), queue: this.o.queue },
              'settling on a closing channel failed',
            );
          }
        }
      }
      if (!state.reported) {
        state.reported = true;
        this.o.logger.info(
          { queue: this.o.queue },
          'channel closed with messages in flight; rabbitmq redelivers them',
        );
      }
      return 'channel_closed';
    };
    return {
      msg,
      channel: ch,
      ack: () => settle(() => ch.ack(msg)),
      nack: (requeue) => settle(() => ch.nack(msg, false, requeue)),
    };
  }
}
