// Refunds on real servers: a charged order that fails is refunded once, in full, through the payment
// gateway simulator (TLS 1.3) under the key refund:<order id>, whatever the gateway's 503s and
// timeouts; an order never charged gets nothing; a refund the gateway refuses stays visible.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { HttpError } from '../services/core/errors.js';
import { createMetrics } from '../services/core/metrics.js';
import { PaymentClient } from '../services/domains/kitchen/payment-client.js';
import { DECLINED_CARD } from '../services/simulators/payment-gateway/server.js';
import { waitFor } from './support/context.js';
import {
  GATEWAY_KEY,
  placePaidOrder,
  seedMenuAndStock,
  stockApplied,
  startKitchenStack,
  type KitchenStack,
} from './support/kitchen.js';
import { testOutbound } from './support/partner-server.js';

let s: KitchenStack;
const metrics = createMetrics();

beforeAll(async () => {
  s = await startKitchenStack('krefund');
  // Two payment attempts, so a gateway down for two calls fails an order before any charge.
  await s.startKitchen({ metrics, env: { KITCHEN_PAYMENT_MAX_ATTEMPTS: '2' } });
  await seedMenuAndStock(s);
  await stockApplied(s);
});
afterAll(async () => {
  await s?.close();
});

const order = (id: string) => s.ctx.db('kitchen_orders').where({ id }).first();
const refundRow = (orderId: string) =>
  s.ctx.db('kitchen_refunds').where({ order_id: orderId }).first();
const paymentIdOf = async (orderId: string) =>
  (await s.ctx.db('kitchen_payments').where({ order_id: orderId, outcome: 'approved' }).first())
    ?.gateway_payment_id as string;
const refundsAtGateway = (paymentId: string) =>
  s.gateway.refunds.filter((r) => r.paymentId === paymentId);

async function refundsCounted(outcome: string): Promise<number> {
  const counter =
    (await metrics.registry.getSingleMetric('hub_kitchen_refunds_total')?.get())?.values ?? [];
  return counter.filter((v) => v.labels.outcome === outcome).reduce((n, v) => n + v.value, 0);
}

/** Places and pays an order, and waits until it is cooking: the charge is done, the gateway is free. */
async function cookingOrder(
  tenant: string,
): Promise<{ orderId: string; token: string; total: number; paymentId: string }> {
  const { token, orderId, total } = await placePaidOrder(s, tenant, [
    { dishId: 'borscht', quantity: 1 },
  ]);
  await waitFor(
    async () => (await order(orderId))?.state === 'in_production',
    15_000,
    'order cooking',
  );
  return {
    orderId,
    token,
    total,
    paymentId: await paymentIdOf(orderId),
  };
}

describe('refunds of failed orders', () => {
  test('an order the robots fail is refunded once, in full, and keeps why it failed', async () => {
    const { orderId, token, total, paymentId } = await cookingOrder('tenant-burnt');
    s.robots.failCooking.add(orderId);
    const got = await waitFor(
      async () => {
        const r = await s.call('GET', `/v1/kitchen/orders/${orderId}`, { token });
        return r.body.order.state === 'refunded' ? r.body.order : undefined;
      },
      15_000,
      'order refunded',
    );
    // Versions: payment_pending 1, paid 2, in_production 3, maybe cooking, failed, refunded.
    expect(got).toMatchObject({
      reason: 'the robots could not cook it',
      refundedAt: expect.any(String),
    });
    expect(got.version).toBeGreaterThanOrEqual(5);
    const refunds = refundsAtGateway(paymentId);
    expect(refunds).toEqual([
      expect.objectContaining({
        amount: total,
        currency: 'RUB',
        idempotencyKey: `refund:${orderId}`,
      }),
    ]);
    expect(refunds[0]?.reason).toBe('the robots could not cook it');
    expect(await refundRow(orderId)).toMatchObject({
      outcome: 'refunded',
      gateway_refund_id: refunds[0]?.refundId,
      status: 2,
      attempts: 1,
      amount_minor: String(total),
    });
    expect(await refundsCounted('refunded')).toBeGreaterThanOrEqual(1);
  });

  test.each([
    ['a 503 from the gateway', 'error' as const],
    ['a timeout after the gateway made the refund', 'timeout' as const],
  ])('%s is retried with the same key and the order is refunded once', async (_what, fault) => {
    const { orderId, paymentId } = await cookingOrder(`tenant-${fault}`);
    const before = s.gateway.refundCalls;
    s.gateway.faults.add(fault);
    s.robots.failCooking.add(orderId);
    await waitFor(
      async () => (await order(orderId))?.state === 'refunded',
      15_000,
      'order refunded',
    );
    expect(s.gateway.refundCalls - before).toBe(2);
    const refunds = refundsAtGateway(paymentId);
    expect(refunds).toEqual([expect.objectContaining({ idempotencyKey: `refund:${orderId}` })]);
    expect(await refundRow(orderId)).toMatchObject({
      outcome: 'refunded',
      attempts: 2,
      gateway_refund_id: refunds[0]?.refundId,
    });
  });

  /** Places an order and pays it while the gateway has `faults` queued; resolves once the order failed. */
  async function orderFailingPayment(
    tenant: string,
    faults: ('error' | 'timeout')[],
  ): Promise<string> {
    const token = await s.idp.token(tenant);
    const placed = await s.call('POST', '/v1/kitchen/orders', {
      token,
      body: { items: [{ dishId: 'salad', quantity: 1 }] },
    });
    const orderId = placed.body.order.orderId as string;
    for (const f of faults) s.gateway.faults.add(f);
    await s.call('POST', `/v1/kitchen/orders/${orderId}/payment`, {
      token,
      body: { cardToken: s.gateway.tokenize('4111111111111111') },
    });
    const failed = await waitFor(
      async () => {
        const o = await order(orderId);
        return o?.state === 'failed' || o?.state === 'refunded' ? o : undefined;
      },
      15_000,
      'order failed',
    );
    expect(failed.reason).toMatch(/payment could not be processed/);
    return orderId;
  }

  test('an order whose payment got no answer and was never charged is not refunded: the gateway is asked and has no charge', async () => {
    const before = s.gateway.refundCalls;
    const notChargedBefore = await refundsCounted('not_charged');
    const orderId = await orderFailingPayment('tenant-uncharged', ['error', 'error']);
    const row = await waitFor(
      async () => {
        const r = await refundRow(orderId);
        return r?.status === 2 ? r : undefined;
      },
      15_000,
      'refund settled',
    );
    expect(row).toMatchObject({
      outcome: 'not_charged',
      gateway_payment_id: null,
      gateway_refund_id: null,
    });
    expect(await s.ctx.db('kitchen_payments').where({ order_id: orderId }).first()).toMatchObject({
      outcome: 'unknown',
      card_token: null,
    });
    expect(await order(orderId)).toMatchObject({ state: 'failed', refunded_at: null });
    expect(s.gateway.charges.filter((c) => c.orderId === orderId)).toHaveLength(0);
    expect(s.gateway.refundCalls).toBe(before);
    expect(await refundsCounted('not_charged')).toBe(notChargedBefore + 1);
  });

  test('an order whose payment was charged but whose answers were lost is refunded once, found by its order id', async () => {
    // The first call charges and its answer is lost; the retry meets an outage; attempts run out.
    const orderId = await orderFailingPayment('tenant-lost-answer', ['timeout', 'error']);
    const charges = s.gateway.charges.filter((c) => c.orderId === orderId);
    expect(charges).toEqual([expect.objectContaining({ status: 'approved' })]);
    await waitFor(
      async () => (await order(orderId))?.state === 'refunded',
      15_000,
      'order refunded',
    );
    expect(refundsAtGateway(charges[0]!.paymentId)).toEqual([
      expect.objectContaining({ amount: charges[0]!.amount, idempotencyKey: `refund:${orderId}` }),
    ]);
    expect(await refundRow(orderId)).toMatchObject({
      outcome: 'refunded',
      gateway_payment_id: charges[0]!.paymentId,
    });
    // The payment is settled as what the gateway did, so accounting sees the charge and its refund.
    expect(await s.ctx.db('kitchen_payments').where({ order_id: orderId }).first()).toMatchObject({
      outcome: 'approved',
      gateway_payment_id: charges[0]!.paymentId,
      settled_at: expect.any(Date),
    });
  });

  test('a declined payment queues no refund', async () => {
    const token = await s.idp.token('tenant-bad-token');
    const placed = await s.call('POST', '/v1/kitchen/orders', {
      token,
      body: { items: [{ dishId: 'salad', quantity: 1 }] },
    });
    const orderId = placed.body.order.orderId as string;
    // A card token the gateway never issued is declined, not failed: the order may be paid again.
    await s.call('POST', `/v1/kitchen/orders/${orderId}/payment`, {
      token,
      body: { cardToken: 'tok_unknown000000000000' },
    });
    await waitFor(
      async () => (await order(orderId))?.state === 'payment_declined',
      15_000,
      'payment declined',
    );
    expect(await refundRow(orderId)).toBeUndefined();
  });

  test('a refund the gateway refuses stays failed with its answer, is counted, and the order stays failed', async () => {
    const { orderId, total, paymentId } = await cookingOrder('tenant-refused');
    // The merchant already gave the money back by hand: the gateway refuses a second full refund.
    expect(s.gateway.refundInDashboard(paymentId, total, 'RUB').status).toBe(201);
    const refusedBefore = await refundsCounted('refused');
    // Recording the outcome is held up for a second: a reader must never see the refund failed
    // without it (the failure and its outcome commit together).
    await s.ctx.db.raw(`
      create function slow_refund_outcome() returns trigger language plpgsql as $$
        begin perform pg_sleep(1); return new; end $$;
      create trigger slow_refund_outcome before update on kitchen_refunds for each row
        when (new.outcome is distinct from old.outcome) execute function slow_refund_outcome();`);
    s.robots.failCooking.add(orderId);
    const row = await waitFor(
      async () => {
        const r = await refundRow(orderId);
        return r?.status === 3 ? r : undefined;
      },
      15_000,
      'refund failed',
    ).finally(() =>
      s.ctx.db.raw(
        'drop trigger slow_refund_outcome on kitchen_refunds; drop function slow_refund_outcome()',
      ),
    );
    expect(row).toMatchObject({ outcome: 'refused', attempts: 1, gateway_refund_id: null });
    expect(row.last_error).toMatch(/422.*refund_exceeds_charge/);
    expect(await order(orderId)).toMatchObject({ state: 'failed', refunded_at: null });
    expect(await refundsCounted('refused')).toBe(refusedBefore + 1);
    expect(refundsAtGateway(paymentId)).toHaveLength(1);
  });

  test('the gateway refuses to refund an unknown or a declined payment', async () => {
    const client = new PaymentClient({
      baseUrl: s.gateway.url,
      apiKey: GATEWAY_KEY,
      ca: s.certificate.cert,
      timeoutMs: 2_000,
      outbound: testOutbound(),
    });
    try {
      const refund = (paymentId: string) =>
        client.refund({
          idempotencyKey: `refund:${randomUUID()}`,
          paymentId,
          amountMinor: 100,
          currency: 'RUB',
          reason: 'test',
        });
      await expect(refund(randomUUID())).rejects.toMatchObject({
        status: 404,
      } satisfies Partial<HttpError>);
      const declined = await client.process({
        idempotencyKey: randomUUID(),
        orderId: randomUUID(),
        amountMinor: 100,
        currency: 'RUB',
        cardToken: s.gateway.tokenize(DECLINED_CARD),
      });
      expect(declined.status).toBe('declined');
      await expect(refund(declined.paymentId)).rejects.toMatchObject({
        status: 409,
      } satisfies Partial<HttpError>);
    } finally {
      client.close();
    }
  });
});
