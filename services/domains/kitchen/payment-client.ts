// Payment gateway client: `POST {gateway}/api/v1/payments/process`,
// `POST {gateway}/api/v1/payments/{paymentId}/refunds` and `GET {gateway}/api/v1/payments?orderId=`
// over HTTPS with TLS 1.3 as the minimum and the certificate verified against the configured CA.
// The Idempotency-Key makes a retried call return the first outcome instead of charging or
// refunding again.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { z } from 'zod';
import { boundedArray } from '../../core/validation.js';
import { HttpError, PermanentError } from '../../core/errors.js';
import type { Metrics } from '../../core/metrics.js';
import { excerpt, type OutboundPolicy } from '../../core/outbound.js';

const PARTNER = 'payment-gateway';

const paymentResult = z.object({
  paymentId: z.string().min(1),
  status: z.enum(['approved', 'declined']),
  declineCode: z.string().optional(),
});
type PaymentResult = z.infer<typeof paymentResult>;

interface PaymentRequest {
  idempotencyKey: string;
  orderId: string;
  amountMinor: number;
  currency: string;
  cardToken: string;
}

const refundResult = z.object({
  refundId: z.string().min(1),
  status: z.literal('succeeded'),
});
type RefundResult = z.infer<typeof refundResult>;

const orderPayments = z.object({
  // An order has a handful of payments; a gateway answer listing more is not parsed element by element.
  payments: boundedArray(
    z.object({
      paymentId: z.string().min(1),
      status: z.enum(['approved', 'declined']),
      amount: z.object({ value: z.number().int().nonnegative(), currency: z.string() }),
    }),
    { max: 1_000 },
  ),
});
type OrderPayments = z.infer<typeof orderPayments>['payments'];

interface RefundRequest {
  idempotencyKey: string;
  /** The gateway's id of the approved payment. */
  paymentId: string;
  amountMinor: number;
  currency: string;
  reason: string;
}

interface PaymentClientOptions {
  baseUrl: string;
  apiKey: string;
  /** PEM text of the CA bundle; undefined means the system store. */
  ca?: string;
  timeoutMs: number;
  metrics?: Metrics;
  /** Allowed hosts, no redirects (node:https never follows them; a 3xx is refused), bounded answers. */
  outbound: OutboundPolicy;
}

/** Whether a call that failed for good was refused by the gateway (a 4xx answer), not left unanswered. */
export function refusedByGateway(failureReason: string): boolean {
  return failureReason.startsWith('http_4');
}

export function readCa(file: string | undefined): string | undefined {
  return file ? readFileSync(file, 'utf8') : undefined;
}

export class PaymentClient {
  private readonly agent: https.Agent;

  constructor(private readonly o: PaymentClientOptions) {
    this.agent = new https.Agent({
      keepAlive: true,
      minVersion: 'TLSv1.3',
      ca: o.ca,
      rejectUnauthorized: true,
    });
  }

  async process(req: PaymentRequest, signal?: AbortSignal): Promise<PaymentResult> {
    const body = {
      orderId: req.orderId,
      amount: { value: req.amountMinor, currency: req.currency },
      paymentToken: req.cardToken,
    };
    return this.call(
      'payments/process',
      'POST',
      '/api/v1/payments/process',
      paymentResult,
      signal,
      { body, idempotencyKey: req.idempotencyKey },
    );
  }

  /** The gateway's charges of an order: what settles a payment whose answer never came. */
  async findPayments(orderId: string, signal?: AbortSignal): Promise<OrderPayments> {
    const path = `/api/v1/payments?orderId=${encodeURIComponent(orderId)}`;
    return (await this.call('payments/find', 'GET', path, orderPayments, signal)).payments;
  }

  /** Refunds (part of) an approved payment; a 4xx (unknown payment, more than charged) is final. */
  async refund(req: RefundRequest, signal?: AbortSignal): Promise<RefundResult> {
    const body = { amount: { value: req.amountMinor, currency: req.currency }, reason: req.reason };
    const path = `/api/v1/payments/${encodeURIComponent(req.paymentId)}/refunds`;
    return this.call('payments/refunds', 'POST', path, refundResult, signal, {
      body,
      idempotencyKey: req.idempotencyKey,
    });
  }

  /** One timed call: a non-2xx answer is an HttpError (retried or not by its status), a 2xx must match `schema`. */
  private async call<T>(
    operation: string,
    method: 'GET' | 'POST',
    path: string,
    schema: z.ZodType<T, z.ZodTypeDef, unknown>,
    signal?: AbortSignal,
    write?: { body: unknown; idempotencyKey: string },
  ): Promise<T> {
    const end = this.o.metrics?.partnerRequests.startTimer({ partner: PARTNER, operation });
    let result = 'error';
    try {
      const res = await this.request(
        method,
        path,
        write ? JSON.stringify(write.body) : undefined,
        write ? { 'idempotency-key': write.idempotencyKey } : {},
        signal,
      );
      result = String(res.status);
      if (res.status < 200 || res.status >= 300) {
        throw new HttpError(
          res.status,
          `payment gateway answered ${res.status} to ${operation}: ${excerpt(res.text)}`,
          this.o.outbound.retryAfterMs(PARTNER, res.retryAfter),
        );
      }
      const parsed = schema.safeParse(safeJson(res.text));
      if (!parsed.success) {
        throw new PermanentError(
          `payment gateway answered ${operation} with 2xx but not the documented body`,
        );
      }
      return parsed.data;
    } finally {
      end?.({ result });
    }
  }

  close(): void {
    this.agent.destroy();
  }

  private request(
    method: 'GET' | 'POST',
    path: string,
    body: string | undefined,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ) {
    const url = this.o.outbound.check(PARTNER, new URL(path, this.o.baseUrl.replace(/\/?$/, '/')));
    return new Promise<{ status: number; text: string; retryAfter: string | undefined }>(
      (resolve, reject) => {
        const req = https.request(
          url,
          {
            method,
            agent: this.agent,
            timeout: this.o.timeoutMs,
            signal,
            headers: {
              authorization: `Bearer ${this.o.apiKey}`,
              ...(body === undefined
                ? {}
                : {
                    'content-type': 'application/json',
                    'content-length': Buffer.byteLength(body),
                  }),
              accept: 'application/json',
              ...headers,
            },
          },
          (res) => {
            const status = res.statusCode ?? 0;
            try {
              this.o.outbound.assertNotRedirect(PARTNER, status);
            } catch (refused) {
              res.destroy();
              reject(refused as Error);
              return;
            }
            this.o.outbound.readNode(PARTNER, res).then(
              (text) =>
                resolve({
                  status,
                  text,
                  retryAfter:
                    typeof res.headers['retry-after'] === 'string'
                      ? res.headers['retry-after']
                      : undefined,
                }),
              reject,
            );
          },
        );
        // No answer within the budget: the charge may or may not have happened; the retry with the
        // same Idempotency-Key finds out.
        req.on('timeout', () => {
          const e = new Error(`payment gateway gave no answer within ${this.o.timeoutMs} ms`);
          e.name = 'TimeoutError';
          req.destroy(e);
        });
        req.on('error', reject);
        req.end(body);
      },
    );
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
