// The dead-letter keeper: consumes the hub's dead-letter queues and moves each message into the
// dead_letters table (acknowledged only after the row is committed, stored once by fingerprint, a
// body over the size limit cut to its beginning and never replayed), and replays the dead letters
// operators asked for to the exchange and routing key they were first published to, on a confirm
// channel, one publish per request.
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel, Message } from 'amqplib';
import type { Knex } from 'knex';
import client, { type Counter, type Gauge, type Registry } from 'prom-client';
import { createChannel, QueueConsumer, type Delivery } from '../amqp.js';
import { PermanentError, toError } from '../errors.js';
import type { WorkListener } from '../engine/notify.js';
import { perRow } from '../engine/per-row.js';
import type { Reconciler } from '../engine/reconciler.js';
import { defineWorkReconciler } from '../engine/work-reconciler.js';
import type { WorkRow, WorkTable } from '../engine/work-table.js';
import type { FieldCipher } from '../field-cipher.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { describeDeadLetter, HUB_REPLAY_OF, keptBody, replayPlan } from './record.js';
import {
  DEAD_LETTERS,
  openBody,
  storeDeadLetter,
  waitingCount,
  type DeadLetterRow,
} from './store.js';

interface KeptQueue {
  /** The dead-letter queue. */
  queue: string;
  /** Declares it (and its exchange) as its owner does; run on every (re)connect before consuming. */
  setup(ch: ConfirmChannel): Promise<unknown>;
}

interface DeadLetterKeeperDeps {
  amqp: AmqpConnectionManager;
  db: Knex;
  queues: readonly KeptQueue[];
  logger: Logger;
  metrics: Metrics;
  owner: string;
  /** Seals bodies at rest: dead letters may carry personal data (a partner's connect command). */
  cipher?: FieldCipher;
  /** Largest body stored whole (DEAD_LETTER_MAX_BODY_BYTES); of a larger one only this many first bytes. */
  maxBodyBytes: number;
  listener?: WorkListener;
  pollMaxMs?: number;
  /** false: leave dead letters in their queues and replay nothing (DEAD_LETTERS_KEEP). */
  enabled?: boolean;
  /** Broker confirm timeout of one replay. */
  publishTimeoutMs?: number;
}

interface DeadLetterMetrics {
  stored: Counter<'queue'>;
  truncated: Counter<'queue'>;
  replayed: Counter<'queue'>;
  waiting: Gauge<'queue'>;
}

/** Dead letters waiting per queue, read when /metrics is scraped. */
type WaitingCount = () => Promise<{ queue: string; n: number }[]>;

/**
 * The keeper's metrics, registered once per registry; `waiting` reads the table at each scrape.
 * Exported like every metrics factory: the metric catalogue (dashboards, alerts) finds them by export.
 */
export function deadLetterMetrics(registry: Registry, waiting?: WaitingCount): DeadLetterMetrics {
  const get = <T>(name: string, make: () => T): T =>
    (registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    stored: get(
      'hub_dead_letters_stored_total',
      () =>
        new client.Counter({
          name: 'hub_dead_letters_stored_total',
          help: 'Dead-lettered messages moved from their dead-letter queue into the dead_letters table, by queue.',
          labelNames: ['queue'] as const,
          registers: [registry],
        }),
    ),
    truncated: get(
      'hub_dead_letters_truncated_total',
      () =>
        new client.Counter({
          name: 'hub_dead_letters_truncated_total',
          help: 'Dead letters stored with only the beginning of their body (larger than DEAD_LETTER_MAX_BODY_BYTES): kept for inspection, never replayed, by queue.',
          labelNames: ['queue'] as const,
          registers: [registry],
        }),
    ),
    replayed: get(
      'hub_dead_letters_replayed_total',
      () =>
        new client.Counter({
          name: 'hub_dead_letters_replayed_total',
          help: 'Dead letters replayed to where they were first published (broker-confirmed), by dead-letter queue.',
          labelNames: ['queue'] as const,
          registers: [registry],
        }),
    ),
    waiting: get(
      'hub_dead_letters_waiting',
      () =>
        new client.Gauge({
          name: 'hub_dead_letters_waiting',
          help: 'Dead letters kept and not replayed (nobody asked, or the replay failed), by dead-letter queue.',
          labelNames: ['queue'] as const,
          registers: [registry],
          async collect() {
            if (!waiting) return;
            try {
              const rows = await waiting();
              this.reset();
              for (const r of rows) this.set({ queue: r.queue }, r.n);
            } catch {
              // The database is unreachable: the last values stay; readiness reports the outage.
            }
          },
        }),
    ),
  };
}

export class DeadLetterKeeper {
  readonly reconciler: Reconciler<WorkRow>;
  private readonly table: WorkTable;
  private readonly m: DeadLetterMetrics;
  private readonly log: Logger;
  private consumer: ChannelWrapper | undefined;
  private queueConsumers: QueueConsumer<ConfirmChannel>[] = [];
  private publisher: ChannelWrapper | undefined;
  private readonly returned = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly d: DeadLetterKeeperDeps) {
    this.log = d.logger.child({ component: 'dead-letters' });
    this.m = deadLetterMetrics(d.metrics.registry, () => waitingCount(d.db));
    const filter = {
      sql: 'queue = any(?)',
      bindings: [d.queues.map((q) => q.queue)] as Knex.Value[],
    };
    const work = defineWorkReconciler<DeadLetterRow & WorkRow>({
      db: d.db,
      logger: d.logger,
      metrics: d.metrics,
      owner: d.owner,
      listener: d.listener,
      table: DEAD_LETTERS,
      name: 'dead-letter-replay',
      leaseMs: 30_000,
      maxAttempts: 10,
      batch: 20,
      filter,
      renewLeases: false,
      pollMaxMs: d.pollMaxMs ?? 5_000,
      handle: (table) =>
        perRow<DeadLetterRow & WorkRow>(table, this.log, {
          warning: 'dead letter not replayed',
          describe: (row) => ({ id: row.id, queue: row.queue }),
          handle: (row, owner) => this.replay(row, owner),
        }),
    });
    this.table = work.table;
    this.reconciler = work.reconciler;
  }

  async start(): Promise<void> {
    if (this.d.enabled === false) {
      this.log.info(
        { queues: this.d.queues.map((q) => q.queue) },
        'dead letters left in their queues (DEAD_LETTERS_KEEP=false)',
      );
      return;
    }
    this.publisher = createChannel(this.d.amqp, this.log, {
      name: 'dead-letter-replay',
      confirm: true,
      json: false,
      publishTimeout: this.d.publishTimeoutMs ?? 5_000,
      setup: (ch: ConfirmChannel) => {
        ch.on('return', (msg: Message) => {
          const of = (msg.properties.headers as Record<string, unknown> | undefined)?.[
            HUB_REPLAY_OF
          ];
          if (typeof of === 'string') this.returned.add(of);
        });
      },
    });
    // Each queue's messages are settled on the channel that delivered them (QueueConsumer): after a
    // reconnect an old delivery tag means nothing on the new channel.
    this.queueConsumers = this.d.queues.map(
      (q) =>
        new QueueConsumer<ConfirmChannel>({
          queue: q.queue,
          prefetch: 20,
          logger: this.log,
          conn: this.d.amqp,
          onMessage: (delivery) => this.track(this.keep(q.queue, delivery)),
        }),
    );
    const consumer = createChannel(this.d.amqp, this.log, {
      name: 'dead-letter-keeper',
      setup: async (ch: ConfirmChannel) => {
        for (const q of this.d.queues) await q.setup(ch);
        for (const c of this.queueConsumers) await c.setup(ch);
      },
    });
    this.consumer = consumer;
    // The first connect runs the setup (declarations, then the consumes) before resolving.
    await consumer.waitForConnect();
    this.reconciler.start();
    this.log.info({ queues: this.d.queues.map((q) => q.queue) }, 'dead-letter keeper started');
  }

  async stop(timeoutMs?: number): Promise<void> {
    await Promise.all(this.queueConsumers.map((c) => c.cancel()));
    await Promise.all(this.inFlight);
    await this.reconciler.stop(timeoutMs);
    await this.consumer?.close().catch(() => undefined);
    await this.publisher?.close().catch(() => undefined);
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  /** Stores one dead letter, then acknowledges it; a database error hands it back a second later. */
  private async keep(queue: string, delivery: Delivery<ConfirmChannel>): Promise<void> {
    const { msg } = delivery;
    const record = describeDeadLetter(queue, msg.fields, msg.properties, msg.content);
    const kept = keptBody(msg.content, this.d.maxBodyBytes);
    try {
      const id = await storeDeadLetter(this.d.db, record, kept, this.d.cipher);
      if (id) {
        this.m.stored.inc({ queue });
        if (kept.truncated) this.m.truncated.inc({ queue });
        const log = {
          id,
          queue,
          sourceQueue: record.sourceQueue,
          reason: record.reason,
          bytes: kept.bytes,
        };
        if (kept.truncated) {
          this.log.warn(
            { ...log, keptBytes: kept.body.length },
            'dead letter stored with only the beginning of its body (DEAD_LETTER_MAX_BODY_BYTES); it cannot be replayed',
          );
        } else this.log.warn(log, 'dead letter stored');
      }
      delivery.ack();
    } catch (thrown) {
      this.log.warn(
        { err: toError(thrown), queue },
        'dead letter not stored yet; handed back to its queue',
      );
      setTimeout(() => delivery.nack(true), 1_000).unref();
    }
  }

  /** Publishes a claimed dead letter where it was first published, then records it replayed. */
  private async replay(row: DeadLetterRow & WorkRow, owner: string): Promise<void> {
    await this.publish(row);
    const done = await this.table.complete([row.id], owner, this.d.db, {
      replayed_at: this.d.db.fn.now(),
    });
    if (done.length === 0) return;
    this.m.replayed.inc({ queue: row.queue });
    this.log.info(
      {
        id: row.id,
        queue: row.queue,
        exchange: row.exchange,
        routingKey: row.routing_key,
        sourceQueue: row.source_queue,
      },
      'dead letter replayed',
    );
  }

  private async publish(row: DeadLetterRow): Promise<void> {
    const plan = replayPlan({ ...row, id: String(row.id) });
    if (!plan.ok) {
      throw new PermanentError(`${plan.reason} (${plan.code})`, { reason: 'not_replayable' });
    }
    let body: Buffer;
    try {
      body = openBody(row, this.d.cipher);
    } catch (cause) {
      throw new PermanentError('its body cannot be decrypted with DATA_ENCRYPTION_KEYS', {
        cause,
        reason: 'not_replayable',
      });
    }
    const id = String(row.id);
    if (!this.publisher) throw new Error('the dead-letter keeper is not started');
    await this.publisher.publish(plan.exchange, plan.routingKey, body, {
      ...plan.properties,
      mandatory: true,
    });
    // basic.return arrives before the confirm of the same message.
    if (this.returned.delete(id)) {
      throw new PermanentError(
        `no queue is bound for routing key "${plan.routingKey}" on exchange "${plan.exchange}"`,
        { reason: 'unroutable' },
      );
    }
  }
}
