// The mq-bridge service: the reconciler that sends connect/disconnect requests to partners, the
// consumer of partner replies, and the partner queues declared for every active partner.
import type { AmqpConnectionManager } from 'amqp-connection-manager';
import type { Redis } from 'ioredis';
import type { Knex } from 'knex';
import { toError } from '../core/errors.js';
import type { WorkListener } from '../core/engine/notify.js';
import type { Reconciler } from '../core/engine/reconciler.js';
import { defineWorkReconciler } from '../core/engine/work-reconciler.js';
import type { WorkTable } from '../core/engine/work-table.js';
import type { FieldCipher } from '../core/field-cipher.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { TenantEventPublisher } from '../core/tenant-events.js';
import type { TenantEvent } from '../contracts/tenant-events.js';
import { Waker } from '../core/sleep.js';
import { CommandCache } from '../domains/smart-home/command-cache.js';
import { CommandPush } from '../domains/smart-home/command-push.js';
import { CommandStore } from '../domains/smart-home/command-store.js';
import { commandRetentionMs, type SmartHomeConfig } from '../domains/smart-home/config.js';
import { smartHomeMetrics } from '../domains/smart-home/metrics.js';
import { activePartners, PARTNERS } from '../domains/smart-home/partners.js';
import { CommandPublisher } from '../domains/smart-home/publisher.js';
import { ReplyConsumer } from '../domains/smart-home/reply-consumer.js';
import { REQUESTS } from '../domains/smart-home/requests.js';
import {
  RECONCILER,
  requestSender,
  type ClaimedRequest,
} from '../domains/smart-home/request-sender.js';
import { repliesQueue } from '../contracts/smart-home-topology.js';

interface MqBridgeDeps {
  db: Knex;
  redis: Redis;
  amqp: AmqpConnectionManager;
  cipher: FieldCipher;
  config: SmartHomeConfig & { REDIS_KEY_PREFIX: string };
  logger: Logger;
  metrics: Metrics;
  owner: string;
  listener?: WorkListener;
  pollMaxMs?: number;
  /**
   * How often partner queues are (re)declared for partners added since start, when no
   * notification of a changed partner arrived (a missed NOTIFY, a listener reconnecting).
   */
  partnerRefreshMs?: number;
}

export interface MqBridge {
  requests: WorkTable;
  reconciler: Reconciler<ClaimedRequest>;
  replies: ReplyConsumer;
  publisher: CommandPublisher;
  start(): Promise<void>;
  stop(timeoutMs?: number): Promise<void>;
}

export function createMqBridge(d: MqBridgeDeps): MqBridge {
  const { db, logger, metrics, config } = d;
  const shMetrics = smartHomeMetrics(metrics.registry);
  const events = new TenantEventPublisher<TenantEvent>(d.redis, config.REDIS_KEY_PREFIX);
  const publisher = new CommandPublisher(d.amqp, logger, shMetrics);
  const { table: requests, reconciler } = defineWorkReconciler<ClaimedRequest>({
    db,
    logger,
    metrics,
    owner: d.owner,
    listener: d.listener,
    table: REQUESTS,
    name: RECONCILER,
    // Covers one publish (5 s confirm timeout) with room to spare.
    leaseMs: 30_000,
    maxAttempts: config.SMART_HOME_MAX_ATTEMPTS,
    failExhaustedOnClaim: false,
    batch: 20,
    pollMaxMs: d.pollMaxMs ?? 1_000,
    handle: (table) =>
      requestSender({ db, table, publisher, cipher: d.cipher, events, config, logger, metrics }),
  });
  const commands = new CommandStore(db);
  const cache = new CommandCache(d.redis, config.REDIS_KEY_PREFIX, commandRetentionMs(config));
  const replies = new ReplyConsumer({
    conn: d.amqp,
    db,
    commands,
    push: new CommandPush({ store: commands, cache, logger, metrics: shMetrics }),
    events,
    metrics: shMetrics,
    logger,
    prefetch: config.SMART_HOME_REPLY_PREFETCH,
    queue: repliesQueue(config.HUB_INSTALLATION),
  });
  // A partner applied (`hub apply`, the operator) gets its queue within moments, not at the next refresh.
  const partnersChanged = new Waker();
  d.listener?.on(PARTNERS, () => partnersChanged.wake());

  const stopRefresh = new AbortController();
  let refreshing: Promise<void> | undefined;
  const declarePartners = async () => {
    try {
      for (const p of await activePartners(db)) {
        await publisher.ensurePartner({ name: p.name, commandQueue: p.command_queue });
      }
    } catch (thrown) {
      logger.warn({ err: toError(thrown) }, 'could not declare partner queues; retrying later');
    }
  };

  return {
    requests,
    reconciler,
    replies,
    publisher,
    async start() {
      await declarePartners();
      await replies.start();
      reconciler.start();
      refreshing = (async () => {
        while (!stopRefresh.signal.aborted) {
          await partnersChanged.wait(d.partnerRefreshMs ?? 60_000, stopRefresh.signal);
          if (!stopRefresh.signal.aborted) await declarePartners();
        }
      })();
    },
    async stop(timeoutMs) {
      stopRefresh.abort();
      await refreshing;
      await reconciler.stop(timeoutMs);
      await replies.stop();
      await publisher.close();
    },
  };
}
