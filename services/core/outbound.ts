// The one policy every outbound client applies (ALLIO, payment gateway, robots, 1C, Keycloak):
// https only (http behind an explicit development switch), an optional host allow-list checked on
// every call, no redirects, answers read up to a byte limit, and a ceiling on Retry-After.
import type { IncomingMessage } from 'node:http';
import type { OutboundConfig } from './config.js';
import { parseRetryAfter, PermanentError } from './errors.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

type OutboundRefusal =
  'outbound_scheme' | 'outbound_host' | 'outbound_redirect' | 'outbound_response_too_large';

/**
 * A call the policy refused or cut off; permanent, because retrying changes nothing. Its code is
 * the classification reason, so a caller can tell "never sent" (scheme, host) from "sent, answer
 * refused" (redirect, too large), where the partner may have acted on the request.
 */
export class OutboundRefusedError extends PermanentError {
  constructor(
    readonly code: OutboundRefusal,
    message: string,
  ) {
    super(`${code}: ${message}`, { reason: code });
    this.name = 'OutboundRefusedError';
  }
}

/** Refusals made before anything was sent: the partner cannot have acted on the request. */
export function refusedBeforeSending(reason: string): boolean {
  return reason === 'outbound_scheme' || reason === 'outbound_host';
}

/** A partner's answer, read whole but never beyond the byte limit. */
export interface PartnerResponse {
  status: number;
  ok: boolean;
  headers: Headers;
  text: string;
}

/** Whether `host` is allowed: an empty list allows any; `*.example.com` allows its subdomains, not itself. */
export function hostAllowed(host: string, allowed: readonly string[]): boolean {
  if (allowed.length === 0) return true;
  const h = host.toLowerCase().replace(/\.$/, '');
  return allowed.some((p) =>
    p.startsWith('*.') ? h.endsWith(p.slice(1)) && h.length > p.length - 1 : h === p,
  );
}

/** Pure: the reason a URL may not be called under `c`, or undefined when it may. */
export function urlRefusal(
  url: URL,
  c: Pick<OutboundConfig, 'OUTBOUND_ALLOW_HTTP' | 'OUTBOUND_ALLOWED_HOSTS'>,
): { code: OutboundRefusal; message: string } | undefined {
  const httpOk = c.OUTBOUND_ALLOW_HTTP && url.protocol === 'http:';
  if (url.protocol !== 'https:' && !httpOk) {
    return {
      code: 'outbound_scheme',
      message: `${url.protocol}// is not allowed; partner URLs must be https (http only with OUTBOUND_ALLOW_HTTP=true in development)`,
    };
  }
  if (!hostAllowed(url.hostname, c.OUTBOUND_ALLOWED_HOSTS)) {
    return {
      code: 'outbound_host',
      message: `host ${url.hostname} is not in OUTBOUND_ALLOWED_HOSTS`,
    };
  }
  return undefined;
}

/** Pure: a Retry-After in ms held to `maxMs`, and whether it had to be. */
export function clampRetryAfter(
  ms: number | undefined,
  maxMs: number,
): { ms: number | undefined; clamped: boolean } {
  if (ms === undefined) return { ms: undefined, clamped: false };
  // `!(ms <= maxMs)` also catches Infinity and NaN from a header of 400 digits.
  if (!(ms <= maxMs)) return { ms: maxMs, clamped: true };
  return { ms: Math.max(0, ms), clamped: false };
}

/**
 * A short one-line excerpt of a partner's body for error messages (and so `last_error`): an error
 * page from a host that should not have been called must not be copied into the database whole.
 */
export function excerpt(text: string, max = 200): string {
  // eslint-disable-next-line no-control-regex -- control characters (line breaks too) become spaces
  const line = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

export class OutboundPolicy {
  constructor(
    readonly config: OutboundConfig,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {}

  /** The URL, parsed, when `partner` may call it; otherwise an OutboundRefusedError (counted). */
  check(partner: string, url: string | URL): URL {
    let u: URL;
    try {
      u = new URL(url);
    } catch (cause) {
      throw new PermanentError(`${partner}: the partner URL is not a URL`, { cause });
    }
    const refusal = urlRefusal(u, this.config);
    if (refusal) throw this.refuse(partner, refusal.code, `${partner}: ${refusal.message}`);
    return u;
  }

  /** Retry-After in ms, clamped to RETRY_AFTER_MAX_MS; a clamp is logged and counted. */
  retryAfterMs(partner: string, header: string | null | undefined): number | undefined {
    const asked = parseRetryAfter(header);
    const { ms, clamped } = clampRetryAfter(asked, this.config.RETRY_AFTER_MAX_MS);
    if (clamped) {
      this.metrics.retryAfterClamped.inc({ partner });
      this.logger.warn(
        { partner, retryAfter: header?.slice(0, 64), askedMs: asked, usedMs: ms },
        'partner asked for a longer pause than RETRY_AFTER_MAX_MS; clamped',
      );
    }
    return ms;
  }

  /** A 3xx is refused, never followed: it could carry our credentials to another host. */
  assertNotRedirect(partner: string, status: number): void {
    if (status >= 300 && status < 400) {
      throw this.refuse(
        partner,
        'outbound_redirect',
        `${partner} answered ${status} (a redirect); redirects are not followed`,
      );
    }
  }

  /** fetch under the policy: URL checked, redirects refused, the body read up to the limit. */
  async fetch(
    partner: string,
    url: string | URL,
    init: RequestInit,
    fetchImpl: typeof fetch = fetch,
  ): Promise<PartnerResponse> {
    const res = await fetchImpl(this.check(partner, url), { ...init, redirect: 'manual' });
    try {
      this.assertNotRedirect(partner, res.status);
      this.assertDeclaredLength(partner, res.headers.get('content-length'));
    } catch (err) {
      await res.body?.cancel().catch(() => undefined);
      throw err;
    }
    const text = await this.readWeb(partner, res.body);
    return { status: res.status, ok: res.ok, headers: res.headers, text };
  }

  /** Reads a node:http answer up to the limit; beyond it the response is destroyed. */
  readNode(partner: string, res: IncomingMessage): Promise<string> {
    return new Promise((resolve, reject) => {
      try {
        this.assertDeclaredLength(partner, res.headers['content-length']);
      } catch (err) {
        res.destroy();
        reject(err as Error);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > this.config.OUTBOUND_MAX_RESPONSE_BYTES) {
          res.destroy();
          reject(this.tooLarge(partner));
        } else chunks.push(c);
      });
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
  }

  private async readWeb(partner: string, body: ReadableStream<Uint8Array> | null): Promise<string> {
    if (!body) return '';
    const reader = body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > this.config.OUTBOUND_MAX_RESPONSE_BYTES) {
        await reader.cancel().catch(() => undefined);
        throw this.tooLarge(partner);
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks, size).toString('utf8');
  }

  private assertDeclaredLength(partner: string, header: string | null | undefined): void {
    if (header && Number(header) > this.config.OUTBOUND_MAX_RESPONSE_BYTES) {
      throw this.tooLarge(partner);
    }
  }

  private tooLarge(partner: string): OutboundRefusedError {
    return this.refuse(
      partner,
      'outbound_response_too_large',
      `${partner}'s answer is larger than OUTBOUND_MAX_RESPONSE_BYTES (${this.config.OUTBOUND_MAX_RESPONSE_BYTES}); it was cut off`,
    );
  }

  private refuse(partner: string, code: OutboundRefusal, message: string): OutboundRefusedError {
    this.metrics.outboundRefused.inc({ partner, reason: code.replace('outbound_', '') });
    return new OutboundRefusedError(code, message);
  }
}
