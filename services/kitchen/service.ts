// The kitchen service: payment, production, refund, 1C-export, warehouse-event and status-outbox
// reconcilers on the shared engine, plus the tick that schedules the hourly 1C export rows.
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel } from 'amqplib';
import type { Knex } from 'knex';
import { createChannel } from '../core/amqp.js';
import { toError } from '../core/errors.js';
import type { WorkListener } from '../core/engine/notify.js';
import { PERIODIC_RUNS } from '../core/engine/periodic.js';
import type { Reconciler } from '../core/engine/reconciler.js';
import { defineWorkReconciler } from '../core/engine/work-reconciler.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { sleep } from '../core/sleep.js';
import type { KitchenConfig } from './config.js';
import { createKitchenMetrics } from '../domains/kitchen/metrics.js';
import { OutboundPolicy } from '../core/outbound.js';
import { OneCClient } from '../domains/kitchen/onec-client.js';
import {
  exportHandler,
  ONEC_EXPORT_JOB,
  scheduleHours,
  type RunRow,
} from '../domains/kitchen/onec-export.js';
import { PaymentClient } from '../domains/kitchen/payment-client.js';
import { paymentHandler, type PaymentRow } from '../domains/kitchen/payment-reconciler.js';
import { productionHandler, type ProductionRow } from '../domains/kitchen/production-reconciler.js';
import { refundHandler, type RefundRow } from '../domains/kitchen/refund-reconciler.js';
import { RobotsClient } from '../domains/kitchen/robots-client.js';
import { assertStatusTopology, statusRoute } from '../domains/kitchen/status-events.js';
import { outboxHandler, type OutboxRow } from '../domains/kitchen/status-publisher.js';
import { warehouseHandler, type WarehouseEventRow } from '../domains/kitchen/warehouse-events.js';

interface KitchenDeps {
  db: Knex;
  config: KitchenConfig;
  /** PEM of the CA the payment gateway's certificate chains to (read from KITCHEN_PAYMENT_CA_FILE). */
  paymentCa?: string;
  amqp: AmqpConnectionManager;
  logger: Logger;
  metrics: Metrics;
  listener?: WorkListener;
  owner: string;
  /** Clock of the 1C export scheduler (tests move it forward). */
  now?: () => Date;
  pollMaxMs?: number;
  schedulerIntervalMs?: number;
}

export interface Kitchen {
  reconcilers: Reconciler<unknown>[];
  /** Schedules the export rows of completed hours now (also done every scheduler interval). */
  scheduleExports(): Promise<number>;
  start(): Promise<void>;
  stop(timeoutMs?: number): Promise<void>;
}

export function createKitchen(d: KitchenDeps): Kitchen {
  const { db, config, logger, metrics } = d;
  const km = createKitchenMetrics(metrics.registry);
  const outbound = new OutboundPolicy(config, logger, metrics);
  // A partner URL the policy refuses stops start-up with its reason instead of failing every order.
  outbound.check('payment-gateway', config.KITCHEN_PAYMENT_URL);
  outbound.check('robots', config.KITCHEN_ROBOTS_URL);
  outbound.check('1c', config.ONEC_ODATA_URL);
  const paymentClient = new PaymentClient({
    baseUrl: config.KITCHEN_PAYMENT_URL,
    apiKey: config.KITCHEN_PAYMENT_API_KEY,
    ca: d.paymentCa,
    timeoutMs: config.KITCHEN_PAYMENT_TIMEOUT_MS,
    metrics,
    outbound,
  });
  const robots = new RobotsClient({
    baseUrl: config.KITCHEN_ROBOTS_URL,
    apiKey: config.KITCHEN_ROBOTS_API_KEY,
    timeoutMs: config.KITCHEN_ROBOTS_TIMEOUT_MS,
    metrics,
    outbound,
  });
  const onec = new OneCClient({
    baseUrl: config.ONEC_ODATA_URL,
    user: config.ONEC_USER,
    password: config.ONEC_PASSWORD,
    timeoutMs: config.ONEC_TIMEOUT_MS,
    metrics,
    outbound,
  });
  const route = statusRoute(config.HUB_INSTALLATION);
  const channel: ChannelWrapper = createChannel(d.amqp, logger, {
    name: 'kitchen-status',
    confirm: true,
    setup: (ch: ConfirmChannel) => assertStatusTopology(ch, route),
  });

  const common = {
    db,
    logger,
    metrics,
    owner: d.owner,
    listener: d.listener,
    pollMaxMs: d.pollMaxMs ?? 5_000,
    leaseMs: config.KITCHEN_LEASE_MS,
  };
  const r = {
    payments: defineWorkReconciler<PaymentRow>({
      ...common,
      table: 'kitchen_payments',
      name: 'kitchen-payments',
      maxAttempts: config.KITCHEN_PAYMENT_MAX_ATTEMPTS,
      batch: 5,
      concurrency: 2,
      handle: (table) =>
        paymentHandler({
          db,
          table,
          client: paymentClient,
          logger,
          metrics: km,
          productionDeadlineMs: config.KITCHEN_PRODUCTION_DEADLINE_MS,
        }),
    }).reconciler,
    production: defineWorkReconciler<ProductionRow>({
      ...common,
      table: 'kitchen_production',
      name: 'kitchen-production',
      maxAttempts: config.KITCHEN_ROBOTS_RETRIES + 1,
      backoff: {
        baseMs: config.KITCHEN_ROBOTS_BACKOFF_MS,
        maxMs: config.KITCHEN_ROBOTS_BACKOFF_MS * 64,
        factor: 2,
      },
      batch: 5,
      concurrency: 2,
      // Polls of cooking orders are due every KITCHEN_PRODUCTION_POLL_MS; sleep no longer than that.
      pollMaxMs: Math.min(common.pollMaxMs, config.KITCHEN_PRODUCTION_POLL_MS),
      handle: (table) =>
        productionHandler({
          db,
          table,
          client: robots,
          logger,
          metrics: km,
          pollMs: config.KITCHEN_PRODUCTION_POLL_MS,
        }),
    }).reconciler,
    refunds: defineWorkReconciler<RefundRow>({
      ...common,
      table: 'kitchen_refunds',
      name: 'kitchen-refunds',
      maxAttempts: config.KITCHEN_REFUND_MAX_ATTEMPTS,
      batch: 5,
      handle: (table) => refundHandler({ db, table, client: paymentClient, logger, metrics: km }),
    }).reconciler,
    export: defineWorkReconciler<RunRow>({
      ...common,
      table: PERIODIC_RUNS,
      name: 'kitchen-1c-export',
      maxAttempts: 20,
      batch: 1,
      filter: { sql: 'name = ?', bindings: [ONEC_EXPORT_JOB] },
      handle: (table) => exportHandler({ db, table, client: onec, logger, metrics: km }),
    }).reconciler,
    warehouse: defineWorkReconciler<WarehouseEventRow>({
      ...common,
      table: 'kitchen_warehouse_events',
      name: 'kitchen-warehouse',
      maxAttempts: 10,
      batch: 50,
      handle: (table) => warehouseHandler({ db, table, logger, metrics: km }),
    }).reconciler,
    outbox: defineWorkReconciler<OutboxRow>({
      ...common,
      table: 'kitchen_outbox',
      name: 'kitchen-status-outbox',
      maxAttempts: 1_000,
      batch: 100,
      handle: (table) =>
        outboxHandler({ db, table, channel, routingKey: route.routingKey, metrics: km }),
    }).reconciler,
  };
  const reconcilers = Object.values(r) as Reconciler<unknown>[];

  const now = d.now ?? (() => new Date());
  const scheduleExports = () => scheduleHours(db, now(), config.KITCHEN_ONEC_CATCHUP_HOURS);
  const stopScheduler = new AbortController();
  let scheduler: Promise<void> | undefined;

  return {
    reconcilers,
    scheduleExports,
    async start() {
      scheduler = (async () => {
        while (!stopScheduler.signal.aborted) {
          try {
            const added = await scheduleExports();
            if (added > 0) logger.info({ added }, '1C export hours scheduled');
          } catch (thrown) {
            logger.warn(
              { err: toError(thrown) },
              'could not schedule 1C export hours; next tick retries',
            );
          }
          await sleep(d.schedulerIntervalMs ?? 60_000, stopScheduler.signal);
        }
      })();
      for (const rec of reconcilers) rec.start();
    },
    async stop(timeoutMs) {
      stopScheduler.abort();
      await scheduler;
      await Promise.all(reconcilers.map((rec) => rec.stop(timeoutMs)));
      await channel.close();
      paymentClient.close();
    },
  };
}
