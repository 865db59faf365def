// Payment gateway simulator: HTTPS with TLS 1.3 only. Tokenizes cards (`POST /api/v1/tokens`, what
// the app calls directly) and charges tokens (`POST /api/v1/payments/process`) once per
// Idempotency-Key. Declines card 4000 0000 0000 0002; injects errors and timeouts on demand.
import { randomBytes, randomUUID } from 'node:crypto';
import https from 'node:https';
import type http from 'node:http';
import { luhnValid } from '../../kitchen/card-number.js';
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

export interface PaymentGatewaySimulator {
  url: string;
  charges: Charge[];
  /** Calls of payments/process, whatever their outcome. */
  calls: number;
  /** `timeout`: charge, then hold the answer for `hangMs`; `error`: answer 503 without charging. */
  faults: FaultQueue<'timeout' | 'error'>;
  tokenize(cardNumber: string): string;
  close(): Promise<void>;
}

export async function startPaymentGateway(o: { certificate: Certificate; apiKey: string; port?: number; hangMs?: number }): Promise<PaymentGatewaySimulator> {
  const tokens = new Map<string, { last4: string; decline: boolean }>();
  const byKey = new Map<string, { request: string; status: number; body: unknown }>();
  const tokenize = (cardNumber: string) => {
    const token = `tok_${randomBytes(12).toString('hex')}`;
    tokens.set(token, { last4: cardNumber.slice(-4), decline: cardNumber === DECLINED_CARD });
    return token;
  };
  const sim: Omit<PaymentGatewaySimulator, 'url' | 'close'> = { charges: [], calls: 0, faults: new FaultQueue(), tokenize };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const text = await readBody(req);
    if (req.method === 'POST' && req.url === '/api/v1/tokens') {
      const b = parseJson(text) as { cardNumber?: unknown } | undefined;
      const pan = typeof b?.cardNumber === 'string' ? b.cardNumber.replace(/\D/g, '') : '';
      if (!luhnValid(pan) || pan.length < 13) return sendJson(res, 422, { error: 'invalid_card_number' });
      return sendJson(res, 201, { token: tokenize(pan), last4: pan.slice(-4) });
    }
    if (req.method !== 'POST' || req.url !== '/api/v1/payments/process') return sendJson(res, 404, { error: 'not_found' });
    sim.calls++;
    if (req.headers.authorization !== `Bearer ${o.apiKey}`) return sendJson(res, 401, { error: 'unauthorized' });
    const key = req.headers['idempotency-key'];
    if (typeof key !== 'string' || key.length < 8) return sendJson(res, 400, { error: 'idempotency_key_required' });
    const seen = byKey.get(key);
    if (seen) {
      if (seen.request !== text) return sendJson(res, 422, { error: 'idempotency_key_reused_with_another_request' });
      return sendJson(res, seen.status, seen.body, { 'idempotent-replayed': 'true' });
    }
    const fault = sim.faults.take();
    if (fault === 'error') return sendJson(res, 503, { error: 'temporarily_unavailable' });
    const b = parseJson(text) as { orderId?: string; amount?: { value?: number; currency?: string }; paymentToken?: string } | undefined;
    const card = b?.paymentToken ? tokens.get(b.paymentToken) : undefined;
    if (!b?.orderId || !b.amount?.value || !b.amount.currency) return sendJson(res, 400, { error: 'invalid_request' });
    const status = card && !card.decline ? 'approved' : 'declined';
    const charge: Charge = { paymentId: randomUUID(), idempotencyKey: key, orderId: b.orderId, amount: b.amount.value, currency: b.amount.currency, status };
    sim.charges.push(charge);
    const body = { paymentId: charge.paymentId, status, ...(status === 'declined' ? { declineCode: card ? 'do_not_honor' : 'invalid_token' } : {}) };
    byKey.set(key, { request: text, status: 200, body });
    if (fault === 'timeout') await hang(res, o.hangMs ?? 10_000);
    sendJson(res, 200, body);
  };

  const server = https.createServer({ key: o.certificate.key, cert: o.certificate.cert, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }, (req, res) => {
    handle(req, res).catch(() => sendJson(res, 500, { error: 'internal' }));
  });
  const port = await listen(server, o.port);
  return Object.assign(sim, { url: `https://127.0.0.1:${port}`, close: () => close(server) });
}
