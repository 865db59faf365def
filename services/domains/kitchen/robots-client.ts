// Robotic kitchen client: `POST {robots}/api/v1/production/orders` with the API key
// and a per-call timeout, keyed by the order id so that a retried call never cooks twice; and the
// status of a production order.
import { z } from 'zod';
import { HttpError, PermanentError } from '../../core/errors.js';
import type { Metrics } from '../../core/metrics.js';
import { excerpt, type OutboundPolicy } from '../../core/outbound.js';

const productionStatus = z.object({
  productionId: z.string().min(1),
  status: z.enum(['queued', 'cooking', 'done', 'failed']),
  reason: z.string().optional(),
});
type ProductionStatus = z.infer<typeof productionStatus>;

export interface ProductionRequest {
  orderId: string;
  items: {
    dishId: string;
    name: string;
    quantity: number;
    program: string;
    temperatureC: number;
    durationSec: number;
    ingredients: { code: string; unit: string; net: number }[];
  }[];
}

export class RobotsClient {
  constructor(
    private readonly o: {
      baseUrl: string;
      apiKey: string;
      timeoutMs: number;
      metrics?: Metrics;
      outbound: OutboundPolicy;
      fetch?: typeof fetch;
    },
  ) {}

  submit(req: ProductionRequest, signal?: AbortSignal): Promise<ProductionStatus> {
    return this.call('POST', '/api/v1/production/orders', 'production/orders', signal, req, {
      'idempotency-key': req.orderId,
    });
  }

  status(productionId: string, signal?: AbortSignal): Promise<ProductionStatus> {
    return this.call(
      'GET',
      `/api/v1/production/orders/${encodeURIComponent(productionId)}`,
      'production/status',
      signal,
    );
  }

  private async call(
    method: string,
    path: string,
    operation: string,
    signal?: AbortSignal,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ProductionStatus> {
    const timeout = AbortSignal.timeout(this.o.timeoutMs);
    const end = this.o.metrics?.partnerRequests.startTimer({ partner: 'robots', operation });
    let result = 'error';
    try {
      const res = await this.o.outbound.fetch(
        'robots',
        new URL(path, this.o.baseUrl.replace(/\/?$/, '/')),
        {
          method,
          headers: {
            'x-api-key': this.o.apiKey,
            accept: 'application/json',
            ...(body ? { 'content-type': 'application/json' } : {}),
            ...headers,
          },
          body: body ? JSON.stringify(body) : undefined,
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        },
        this.o.fetch,
      );
      result = String(res.status);
      const { text } = res;
      if (!res.ok) {
        throw new HttpError(
          res.status,
          `robots ${operation} answered ${res.status}: ${excerpt(text)}`,
          this.o.outbound.retryAfterMs('robots', res.headers.get('retry-after')),
        );
      }
      const parsed = productionStatus.safeParse(JSON.parse(text));
      if (!parsed.success) {
        throw new PermanentError(`robots ${operation} answered without {productionId, status}`);
      }
      return parsed.data;
    } finally {
      end?.({ result });
    }
  }
}
