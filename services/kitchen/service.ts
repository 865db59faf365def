// The kitchen service: payment, production, refund, 1C-export, warehouse-event and status-outbox
// reconcilers on the shared engine, plus the tick that schedules the hourly 1C export rows.
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel } from 'amqplib';
import type { Knex } from 'knex';
import { createChannel } from '../core/amqp.js';
import { toError } from '../core/errors.js';
import type { WorkListener } from '../core/engine/notify.js';
import { PERIODIC_RUNS } from '../core/engine/periodic.js';
import { Reconciler } from '../core/engine/reconciler.js';
import { WorkTable } from '../core/engine/work-table.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { sleep } from '../core/sleep.js';
import type { KitchenConfig } from './config.js';
import { createKitchenMetrics } from '../domains/kitchen/metrics.js';
import { OutboundPolicy } from '../core/outbound.js';
import { OneCClient } from '../domains/kitchen/onec-client.js';
import { exportHandler, ONEC_EXPORT_JOB, scheduleHours } from '../domains/kitchen/onec-export.js';
import { PaymentClient } from '../domains/kitchen/payment-client.js';
import { paymentHandler, type PaymentRow } from '../domains/kitchen/payment-reconciler.js';
import { productionHandler, type ProductionRow } from '../domains/kitchen/production-reconciler.js';
import { refundHandler, type RefundRow } from '../domains/kitchen/refund-reconciler.js';
import { RobotsClient } from '../domains/kitchen/robots-client.js';
import { assertStatusTopology } from '../domains/kitchen/status-events.js';
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
  const leaseMs = config.KITCHEN_LEASE_MS;
  const table = (name: string, reconciler: string, maxAttempts: number, backoff?: { baseMs: number; maxMs: number; factor: number }) =>
    new WorkTable(db, metrics, logger, { table: name, reconciler, leaseMs, maxAttempts, backoff });
  const payments = table('kitchen_payments', 'kitchen-payments', config.KITCHEN_PAYMENT_MAX_ATTEMPTS);
  const production = table('kitchen_production', 'kitchen-production', config.KITCHEN_ROBOTS_RETRIES + 1, {
    baseMs: config.KITCHEN_ROBOTS_BACKOFF_MS, maxMs: config.KITCHEN_ROBOTS_BACKOFF_MS * 64, factor: 2,
  });
  const refunds = table('kitchen_refunds', 'kitchen-refunds', config.KITCHEN_REFUND_MAX_ATTEMPTS);
  const runs = table(PERIODIC_RUNS, 'kitchen-1c-export', 20);
  const warehouse = table('kitchen_warehouse_events', 'kitchen-warehouse', 10);
  const outbox = table('kitchen_outbox', 'kitchen-status-outbox', 1_000);

  const outbound = new OutboundPolicy(config, logger, metrics);
  // A partner URL the policy refuses stops start-up with its reason instead of failing every order.
  outbound.check('payment-gateway', config.KITCHEN_PAYMENT_URL);
  outbound.check('robots', config.KITCHEN_ROBOTS_URL);
  outbound.check('1c', config.ONEC_ODATA_URL);
  const paymentClient = new PaymentClient({
    baseUrl: config.KITCHEN_PAYMENT_URL, apiKey: config.KITCHEN_PAYMENT_API_KEY, ca: d.paymentCa, timeoutMs: config.KITCHEN_PAYMENT_TIMEOUT_MS, metrics, outbound,
  });
  const robots = new RobotsClient({ baseUrl: config.KITCHEN_ROBOTS_URL, apiKey: config.KITCHEN_ROBOTS_API_KEY, timeoutMs: config.KITCHEN_ROBOTS_TIMEOUT_MS, metrics, outbound });
  const onec = new OneCClient({ baseUrl: config.ONEC_ODATA_URL, user: config.ONEC_USER, password: config.ONEC_PASSWORD, timeoutMs: config.ONEC_TIMEOUT_MS, metrics, outbound });
  const channel: ChannelWrapper = createChannel(d.amqp, logger, { name: 'kitchen-status', confirm: true, setup: (ch: ConfirmChannel) => assertStatusTopology(ch) });

  const common = { owner: d.owner, logger, metrics, pollMaxMs: d.pollMaxMs ?? 5_000 };
  const exportFilter = { sql: 'name = ?', bindings: [ONEC_EXPORT_JOB] };
  const settle = (t: WorkTable) => (batch: { id: string; status: number; attempts: number }[], owner: string, err: Error) =>
    t.settleError(batch, owner, err).then(() => undefined);

  const r = {
    payments: new Reconciler<PaymentRow>({
      ...common, name: 'kitchen-payments', concurrency: 2,
      claim: (owner) => payments.claim<PaymentRow>(owner, 5),
      handle: paymentHandler({ db, table: payments, client: paymentClient, logger, metrics: km, productionDeadlineMs: config.KITCHEN_PRODUCTION_DEADLINE_MS }),
      onHandlerError: settle(payments), lease: payments.renewal(), stats: () => payments.stats(),
    }),
    production: new Reconciler<ProductionRow>({
      ...common, name: 'kitchen-production', concurrency: 2,
      // Polls of cooking orders are due every KITCHEN_PRODUCTION_POLL_MS; sleep no longer than that.
      pollMaxMs: Math.min(common.pollMaxMs, config.KITCHEN_PRODUCTION_POLL_MS),
      claim: (owner) => production.claim<ProductionRow>(owner, 5),
      handle: productionHandler({ db, table: production, client: robots, logger, metrics: km, pollMs: config.KITCHEN_PRODUCTION_POLL_MS }),
      onHandlerError: settle(production), lease: production.renewal(), stats: () => production.stats(),
    }),
    refunds: new Reconciler<RefundRow>({
      ...common, name: 'kitchen-refunds',
      claim: (owner) => refunds.claim<RefundRow>(owner, 5),
      handle: refundHandler({ db, table: refunds, client: paymentClient, logger, metrics: km }),
      onHandlerError: settle(refunds), lease: refunds.renewal(), stats: () => refunds.stats(),
    }),
    export: new Reconciler({
      ...common, name: 'kitchen-1c-export',
      claim: (owner) => runs.claim<{ id: string; status: number; attempts: number; period_key: string }>(owner, 1, exportFilter),
      handle: exportHandler({ db, table: runs, client: onec, logger, metrics: km }),
      onHandlerError: settle(runs), lease: runs.renewal(), stats: () => runs.stats(exportFilter),
    }),
    warehouse: new Reconciler<WarehouseEventRow>({
      ...common, name: 'kitchen-warehouse',
      claim: (owner) => warehouse.claim<WarehouseEventRow>(owner, 50),
      handle: warehouseHandler({ db, table: warehouse, logger, metrics: km }),
      onHandlerError: settle(warehouse), lease: warehouse.renewal(), stats: () => warehouse.stats(),
    }),
    outbox: new Reconciler<OutboxRow>({
      ...common, name: 'kitchen-status-outbox',
      claim: (owner) => outbox.claim<OutboxRow>(owner, 100),
      handle: outboxHandler({ db, table: outbox, channel, metrics: km }),
      onHandlerError: settle(outbox), lease: outbox.renewal(), stats: () => outbox.stats(),
    }),
  };
  d.listener?.on('kitchen_payments', () => r.payments.notify());
  d.listener?.on('kitchen_production', () => r.production.notify());
  d.listener?.on('kitchen_refunds', () => r.refunds.notify());
  d.listener?.on(PERIODIC_RUNS, () => r.export.notify());
  d.listener?.on('kitchen_warehouse_events', () => r.warehouse.notify());
  d.listener?.on('kitchen_outbox', () => r.outbox.notify());
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
            logger.warn({ err: toError(thrown) }, 'could not schedule 1C export hours; next tick retries');
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
