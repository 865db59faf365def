// Payment gateway simulator: HTTPS with TLS 1.3 only. Tokenizes cards (`POST /api/v1/tokens`, what
// the app calls directly), charges tokens (`POST /api/v1/payments/process`) and refunds approved
// payments (`POST /api/v1/payments/{paymentId}/refunds`), each once per Idempotency-Key, and lists an
// order's charges (`GET /api/v1/payments?orderId=`). Declines card
// 4000 0000 0000 0002; refuses refunds of unknown or declined payments and beyond the amount charged;
// injects errors and timeouts on demand.
import { randomBytes, randomUUID } from 'node:crypto';
import https from 'node:https';
import type http from 'node:http';
import { luhnValid } from '../../contracts/card-number.js';
import { close, FaultQueue, hang, listen, parseJson, readBody, sendJson } from '../http-kit.js';
import type { Certificate } from '../tls.js';

export const DECLINED_CARD = '4000000000000002';

export interface Charge {
  paymentId: string;
  idempotencyKey: string;
  orderId: string;
  amount: number;
  currency: string;
  status: 'approved' | 'declined';
}

export interface Refund {
  refundId: string;
  paymentId: string;
  /** Undefined for a refund made in the gateway's dashboard rather than through the API. */
  idempotencyKey?: string;
  amount: number;
  currency: string;
  reason: string;
}

export interface PaymentGatewaySimulator {
  url: string;
  charges: Charge[];
  refunds: Refund[];
  /** Calls of payments/process, whatever their outcome. */
  calls: number;
  /** Calls of payments/{id}/refunds, whatever their outcome. */
  refundCalls: number;
  /**
   * Taken by the next charge or refund call. `timeout`: do the work, then hold the answer for
   * `hangMs`; `error`: answer 503 without doing it.
   */
  faults: FaultQueue<'timeout' | 'error'>;
  tokenize(cardNumber: string): string;
  /** A refund made by the merchant in the gateway's dashboard; returns the gateway's answer. */
  refundInDashboard(paymentId: string, amount: number, currency: string): GatewayAnswer;
  close(): Promise<void>;
}

export interface GatewayAnswer {
  status: number;
  body: unknown;
}

const PROCESS_PATH = '/api/v1/payments/process';
const REFUNDS_PATH = /^\/api\/v1\/payments\/([^/]+)\/refunds$/;

export async function startPaymentGateway(o: {
  certificate: Certificate;
  apiKey: string;
  port?: number;
  hangMs?: number;
}): Promise<PaymentGatewaySimulator> {
  const tokens = new Map<string, { last4: string; decline: boolean }>();
  const byKey = new Map<string, { request: string } & GatewayAnswer>();
  const tokenize = (cardNumber: string) => {
    const token = `tok_${randomBytes(12).toString('hex')}`;
    tokens.set(token, { last4: cardNumber.slice(-4), decline: cardNumber === DECLINED_CARD });
    return token;
  };

  const charge = (key: string, text: string): GatewayAnswer => {
    const b = parseJson(text) as
      | { orderId?: string; amount?: { value?: number; currency?: string }; paymentToken?: string }
      | undefined;
    const card = b?.paymentToken ? tokens.get(b.paymentToken) : undefined;
    if (!b?.orderId || !b.amount?.value || !b.amount.currency) {
      return { status: 400, body: { error: 'invalid_request' } };
    }
    const status = card && !card.decline ? 'approved' : 'declined';
    const c: Charge = {
      paymentId: randomUUID(),
      idempotencyKey: key,
      orderId: b.orderId,
      amount: b.amount.value,
      currency: b.amount.currency,
      status,
    };
    sim.charges.push(c);
    return {
      status: 200,
      body: {
        paymentId: c.paymentId,
        status,
        ...(status === 'declined' ? { declineCode: card ? 'do_not_honor' : 'invalid_token' } : {}),
      },
    };
  };

  const refund = (
    paymentId: string,
    amount: number,
    currency: string,
    reason: string,
    key?: string,
  ): GatewayAnswer => {
    const paid = sim.charges.find((c) => c.paymentId === paymentId);
    if (!paid) return { status: 404, body: { error: 'payment_not_found' } };
    if (paid.status !== 'approved') {
      return { status: 409, body: { error: 'payment_not_refundable' } };
    }
    if (currency !== paid.currency) return { status: 422, body: { error: 'currency_mismatch' } };
    const refunded = sim.refunds
      .filter((r) => r.paymentId === paymentId)
      .reduce((sum, r) => sum + r.amount, 0);
    if (refunded + amount > paid.amount) {
      return {
        status: 422,
        body: { error: 'refund_exceeds_charge', refundable: paid.amount - refunded },
      };
    }
    const r: Refund = {
      refundId: randomUUID(),
      paymentId,
      idempotencyKey: key,
      amount,
      currency,
      reason,
    };
    sim.refunds.push(r);
    return {
      status: 201,
      body: {
        refundId: r.refundId,
        paymentId,
        status: 'succeeded',
        amount: { value: amount, currency },
      },
    };
  };

  const refundRequest = (paymentId: string, key: string, text: string): GatewayAnswer => {
    const b = parseJson(text) as
      { amount?: { value?: unknown; currency?: unknown }; reason?: unknown } | undefined;
    const value = b?.amount?.value;
    const currency = b?.amount?.currency;
    const reason = b?.reason ?? '';
    if (
      !Number.isInteger(value) ||
      (value as number) <= 0 ||
      typeof currency !== 'string' ||
      typeof reason !== 'string' ||
      reason.length > 500
    ) {
      return { status: 400, body: { error: 'invalid_request' } };
    }
    return refund(paymentId, value as number, currency, reason, key);
  };

  const sim: Omit<PaymentGatewaySimulator, 'url' | 'close'> = {
    charges: [],
    refunds: [],
    calls: 0,
    refundCalls: 0,
    faults: new FaultQueue(),
    tokenize,
    refundInDashboard: (paymentId, amount, currency) =>
      refund(paymentId, amount, currency, 'refunded in the dashboard'),
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const text = await readBody(req);
    if (req.method === 'POST' && req.url === '/api/v1/tokens') {
      const b = parseJson(text) as { cardNumber?: unknown } | undefined;
      const pan = typeof b?.cardNumber === 'string' ? b.cardNumber.replace(/\D/g, '') : '';
      if (!luhnValid(pan) || pan.length < 13) {
        return sendJson(res, 422, { error: 'invalid_card_number' });
      }
      return sendJson(res, 201, { token: tokenize(pan), last4: pan.slice(-4) });
    }
    const url = new URL(req.url ?? '/', 'https://gateway');
    if (req.method === 'GET' && url.pathname === '/api/v1/payments') {
      if (req.headers.authorization !== `Bearer ${o.apiKey}`) {
        return sendJson(res, 401, { error: 'unauthorized' });
      }
      const orderId = url.searchParams.get('orderId');
      if (!orderId) return sendJson(res, 400, { error: 'order_id_required' });
      const payments = sim.charges
        .filter((c) => c.orderId === orderId)
        .map((c) => ({
          paymentId: c.paymentId,
          status: c.status,
          amount: { value: c.amount, currency: c.currency },
        }));
      return sendJson(res, 200, { payments });
    }
    const refundOf = req.url?.match(REFUNDS_PATH)?.[1];
    if (req.method !== 'POST' || (req.url !== PROCESS_PATH && !refundOf)) {
      return sendJson(res, 404, { error: 'not_found' });
    }
    if (refundOf) sim.refundCalls++;
    else sim.calls++;
    if (req.headers.authorization !== `Bearer ${o.apiKey}`) {
      return sendJson(res, 401, { error: 'unauthorized' });
    }
    const key = req.headers['idempotency-key'];
    if (typeof key !== 'string' || key.length < 8) {
      return sendJson(res, 400, { error: 'idempotency_key_required' });
    }
    // An outage answers before the idempotency store is consulted, as a load balancer in front would.
    const fault = sim.faults.take();
    if (fault === 'error') return sendJson(res, 503, { error: 'temporarily_unavailable' });
    const seen = byKey.get(key);
    if (seen) {
      if (seen.request !== text) {
        return sendJson(res, 422, { error: 'idempotency_key_reused_with_another_request' });
      }
      return sendJson(res, seen.status, seen.body, { 'idempotent-replayed': 'true' });
    }
    const answer = refundOf
      ? refundRequest(decodeURIComponent(refundOf), key, text)
      : charge(key, text);
    // A request that did not validate is not an outcome: the same key may come back corrected.
    if (answer.status !== 400) byKey.set(key, { request: text, ...answer });
    if (fault === 'timeout') await hang(res, o.hangMs ?? 10_000);
    sendJson(res, answer.status, answer.body);
  };

  const server = https.createServer(
    {
      key: o.certificate.key,
      cert: o.certificate.cert,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
    },
    (req, res) => {
      handle(req, res).catch(() => sendJson(res, 500, { error: 'internal' }));
    },
  );
  const port = await listen(server, o.port);
  return Object.assign(sim, { url: `https://127.0.0.1:${port}`, close: () => close(server) });
}
