// Warehouse system simulator: sends stock levels, receipts and expiry dates to the hub as Standard
// Webhooks signed with its current secret. `send` is for tests; `POST /simulate/{type}` with the
// event's `data` lets a person trigger one by hand in the demo.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { sign } from '../../contracts/standard-webhooks.js';
import { close, listen, parseJson, readBody, sendJson } from '../http-kit.js';

export type WarehouseEventType = 'stock.level' | 'stock.receipt' | 'stock.expiry';

export interface SendOptions {
  id?: string;
  /** Unix seconds; defaults to now. */
  timestamp?: number;
  /** Overrides the signing secret (a wrong key in tests). */
  secret?: string;
  /** Signs with each of these, one signature per secret in the header, as a sender does while rotating. */
  secrets?: readonly string[];
  /** Sent instead of the real signature. */
  signature?: string;
}

export interface WarehouseSimulator {
  url: string;
  send(
    type: WarehouseEventType,
    data: Record<string, unknown>,
    o?: SendOptions,
  ): Promise<{ status: number; body: unknown; id: string }>;
  close(): Promise<void>;
}

export async function startWarehouseSimulator(o: {
  targetUrl: string;
  secret: string;
  port?: number;
}): Promise<WarehouseSimulator> {
  const send: WarehouseSimulator['send'] = async (type, data, s = {}) => {
    const id = s.id ?? `msg_${randomUUID()}`;
    const timestamp = s.timestamp ?? Math.floor(Date.now() / 1000);
    const body = JSON.stringify({
      type,
      timestamp: new Date(timestamp * 1000).toISOString(),
      data,
    });
    const res = await fetch(o.targetUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(timestamp),
        'webhook-signature':
          s.signature ??
          (s.secrets ?? [s.secret ?? o.secret]).map((k) => sign(k, id, timestamp, body)).join(' '),
      },
      body,
    });
    return { status: res.status, body: parseJson(await res.text()), id };
  };
  const server = http.createServer((req, res) => {
    void (async () => {
      const m =
        req.method === 'POST'
          ? req.url?.match(/^\/simulate\/(stock\.(?:level|receipt|expiry))$/)
          : null;
      if (!m?.[1]) {
        return sendJson(res, 404, {
          error: 'POST /simulate/stock.level|stock.receipt|stock.expiry with the event data',
        });
      }
      const data = parseJson(await readBody(req));
      if (!data || typeof data !== 'object') {
        return sendJson(res, 400, { error: 'body must be the event data object' });
      }
      sendJson(res, 200, await send(m[1] as WarehouseEventType, data as Record<string, unknown>));
    })().catch((e: unknown) => sendJson(res, 502, { error: String(e) }));
  });
  const port = await listen(server, o.port);
  return { url: `http://127.0.0.1:${port}`, send, close: () => close(server) };
}
