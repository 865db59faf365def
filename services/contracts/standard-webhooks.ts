// Standard Webhooks (standardwebhooks.com) signatures: `webhook-signature` carries space-separated
// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` entries, keys are `whsec_<base64>`; several
// secrets are accepted at once so that a sender can rotate keys without lost deliveries.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const DEFAULT_TOLERANCE_SECONDS = 300;

export type VerifyResult =
  | { ok: true; id: string; timestamp: number }
  | {
      ok: false;
      code:
        | 'missing_headers'
        | 'invalid_timestamp'
        | 'timestamp_out_of_tolerance'
        | 'invalid_signature';
      message: string;
    };

export function secretKey(secret: string): Buffer {
  const raw = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret;
  const key = Buffer.from(raw, 'base64');
  if (key.length < 16) {
    throw new Error('a webhook secret must be whsec_ followed by at least 16 base64-encoded bytes');
  }
  return key;
}

export function sign(secret: string, id: string, timestamp: number, body: string | Buffer): string {
  const mac = createHmac('sha256', secretKey(secret))
    .update(`${id}.${timestamp}.`)
    .update(body)
    .digest('base64');
  return `v1,${mac}`;
}

export interface WebhookHeaders {
  id: string | undefined;
  timestamp: string | undefined;
  signature: string | undefined;
}

/** Checks headers, the tolerance window and the signature against every secret; pure (clock injected). */
export function verify(
  secrets: readonly string[],
  headers: WebhookHeaders,
  body: string | Buffer,
  nowSeconds: number,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
): VerifyResult {
  const { id, timestamp, signature } = headers;
  if (!id || !timestamp || !signature) {
    return {
      ok: false,
      code: 'missing_headers',
      message: 'Send webhook-id, webhook-timestamp and webhook-signature headers.',
    };
  }
  if (!/^\d{1,12}$/.test(timestamp)) {
    return {
      ok: false,
      code: 'invalid_timestamp',
      message: 'webhook-timestamp must be Unix seconds.',
    };
  }
  const ts = Number(timestamp);
  if (Math.abs(nowSeconds - ts) > toleranceSeconds) {
    return {
      ok: false,
      code: 'timestamp_out_of_tolerance',
      message: `webhook-timestamp is more than ${toleranceSeconds} s from our clock; send fresh deliveries and check the sender's clock.`,
    };
  }
  const offered = signature
    .split(' ')
    .filter((s) => s.startsWith('v1,'))
    .map((s) => Buffer.from(s.slice(3), 'base64'));
  for (const secret of secrets) {
    const expected = Buffer.from(sign(secret, id, ts, body).slice(3), 'base64');
    if (offered.some((o) => o.length === expected.length && timingSafeEqual(o, expected))) {
      return { ok: true, id, timestamp: ts };
    }
  }
  return {
    ok: false,
    code: 'invalid_signature',
    message: 'No v1 signature matches a current secret; check the signing secret.',
  };
}
