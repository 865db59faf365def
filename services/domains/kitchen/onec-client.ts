// 1C:Accounting OData client: documents and catalog entries are created with
// `POST {base}/{Document_…|Catalog_…}?$format=json` and looked up by Ref_Key, with Basic authentication.
import { HttpError } from '../../core/errors.js';
import type { Metrics } from '../../core/metrics.js';
import { excerpt, type OutboundPolicy, type PartnerResponse } from '../../core/outbound.js';

export class OneCClient {
  private readonly auth: string;

  constructor(
    private readonly o: {
      baseUrl: string;
      user: string;
      password: string;
      timeoutMs: number;
      metrics?: Metrics;
      outbound: OutboundPolicy;
    },
  ) {
    this.auth = `Basic ${Buffer.from(`${o.user}:${o.password}`).toString('base64')}`;
  }

  /** The longest one call may take. */
  get timeoutMs(): number {
    return this.o.timeoutMs;
  }

  async create(
    docType: string,
    body: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<void> {
    const res = await this.request(
      'POST',
      `${encodeURIComponent(docType)}?$format=json`,
      'create',
      signal,
      body,
    );
    if (res.status !== 201 && res.status !== 200) throw this.error(res, `create ${docType}`);
  }

  /** Whether a document with this Ref_Key exists (a POST whose answer was lost may have landed). */
  async exists(docType: string, refKey: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.request(
      'GET',
      `${encodeURIComponent(docType)}(guid'${refKey}')?$format=json`,
      'get',
      signal,
    );
    if (res.status === 404) return false;
    if (res.ok) return true;
    throw this.error(res, `read ${docType}`);
  }

  private async request(
    method: string,
    path: string,
    operation: string,
    signal: AbortSignal | undefined,
    body?: unknown,
  ): Promise<PartnerResponse> {
    const timeout = AbortSignal.timeout(this.o.timeoutMs);
    const end = this.o.metrics?.partnerRequests.startTimer({ partner: '1c', operation });
    let result = 'error';
    try {
      const res = await this.o.outbound.fetch(
        '1c',
        `${this.o.baseUrl.replace(/\/+$/, '')}/${path}`,
        {
          method,
          headers: {
            authorization: this.auth,
            accept: 'application/json',
            ...(body ? { 'content-type': 'application/json' } : {}),
          },
          body: body ? JSON.stringify(body) : undefined,
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        },
      );
      result = String(res.status);
      return res;
    } finally {
      end?.({ result });
    }
  }

  private error(res: PartnerResponse, what: string): HttpError {
    return new HttpError(
      res.status,
      `1C ${what} answered ${res.status}: ${excerpt(res.text)}`,
      this.o.outbound.retryAfterMs('1c', res.headers.get('retry-after')),
    );
  }
}
