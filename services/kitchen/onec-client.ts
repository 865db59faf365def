// 1C:Accounting OData client: documents and catalog entries are created with
// `POST {base}/{Document_…|Catalog_…}?$format=json` and looked up by Ref_Key, with Basic authentication.
import { HttpError, parseRetryAfter } from '../core/errors.js';
import type { Metrics } from '../core/metrics.js';

export class OneCClient {
  private readonly auth: string;

  constructor(private readonly o: { baseUrl: string; user: string; password: string; timeoutMs: number; metrics?: Metrics }) {
    this.auth = `Basic ${Buffer.from(`${o.user}:${o.password}`).toString('base64')}`;
  }

  async create(docType: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<void> {
    const res = await this.request('POST', `${encodeURIComponent(docType)}?$format=json`, 'create', signal, body);
    if (res.status !== 201 && res.status !== 200) throw await this.error(res, `create ${docType}`);
  }

  /** Whether a document with this Ref_Key exists (a POST whose answer was lost may have landed). */
  async exists(docType: string, refKey: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.request('GET', `${encodeURIComponent(docType)}(guid'${refKey}')?$format=json`, 'get', signal);
    if (res.status === 404) return false;
    if (res.ok) return true;
    throw await this.error(res, `read ${docType}`);
  }

  private async request(method: string, path: string, operation: string, signal: AbortSignal | undefined, body?: unknown): Promise<Response> {
    const timeout = AbortSignal.timeout(this.o.timeoutMs);
    const end = this.o.metrics?.partnerRequests.startTimer({ partner: '1c', operation });
    let result = 'error';
    try {
      const res = await fetch(`${this.o.baseUrl.replace(/\/+$/, '')}/${path}`, {
        method,
        headers: { authorization: this.auth, accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      result = String(res.status);
      return res;
    } finally {
      end?.({ result });
    }
  }

  private async error(res: Response, what: string): Promise<HttpError> {
    const text = await res.text().catch(() => '');
    return new HttpError(res.status, `1C ${what} answered ${res.status}: ${text.slice(0, 300)}`, parseRetryAfter(res.headers.get('retry-after')));
  }
}
