// Robotic kitchen simulator: `POST /api/v1/production/orders` (API key) accepts an order once per
// order id and reports a repeated one as a duplicate; `GET …/{productionId}` says queued, cooking,
// then done after `cookMs`. Slow (timeout) and failing (503) answers on demand.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { close, FaultQueue, hang, listen, parseJson, readBody, sendJson } from '../http-kit.js';

export interface Production {
  productionId: string;
  orderId: string;
  createdAt: number;
  items: unknown[];
}

export interface RobotsSimulator {
  url: string;
  /** POSTs of production orders received, whatever their outcome. */
  calls: number;
  /** Repeated POSTs for an order already in production (answered with the same production). */
  duplicates: number;
  productions: Map<string, Production>;
  /** `timeout`: accept the order, then hold the answer for `hangMs`; `error`: 503, nothing accepted. */
  faults: FaultQueue<'timeout' | 'error'>;
  /** Orders whose cooking fails. */
  failCooking: Set<string>;
  /** Orders kept cooking (never done) while listed here. */
  holdCooking: Set<string>;
  close(): Promise<void>;
}

export async function startRobotsSimulator(o: {
  apiKey: string;
  port?: number;
  cookMs?: number;
  hangMs?: number;
}): Promise<RobotsSimulator> {
  const byOrder = new Map<string, Production>();
  const sim = {
    calls: 0,
    duplicates: 0,
    productions: new Map<string, Production>(),
    faults: new FaultQueue<'timeout' | 'error'>(),
    failCooking: new Set<string>(),
    holdCooking: new Set<string>(),
  };
  const cookMs = o.cookMs ?? 3_000;

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const text = await readBody(req);
    if (req.headers['x-api-key'] !== o.apiKey) {
      return sendJson(res, 401, { error: 'invalid_api_key' });
    }
    const status = req.url?.match(/^\/api\/v1\/production\/orders\/([0-9a-f-]{36})$/);
    if (req.method === 'GET' && status?.[1]) {
      const p = sim.productions.get(status[1]);
      if (!p) return sendJson(res, 404, { error: 'production_not_found' });
      const age = Date.now() - p.createdAt;
      const state = sim.failCooking.has(p.orderId)
        ? 'failed'
        : sim.holdCooking.has(p.orderId)
          ? age >= cookMs / 4
            ? 'cooking'
            : 'queued'
          : age >= cookMs
            ? 'done'
            : age >= cookMs / 4
              ? 'cooking'
              : 'queued';
      return sendJson(res, 200, {
        productionId: p.productionId,
        status: state,
        ...(state === 'failed' ? { reason: 'fryer fault' } : {}),
      });
    }
    if (req.method !== 'POST' || req.url !== '/api/v1/production/orders') {
      return sendJson(res, 404, { error: 'not_found' });
    }
    sim.calls++;
    const fault = sim.faults.take();
    if (fault === 'error') return sendJson(res, 503, { error: 'line_busy' });
    const body = parseJson(text) as { orderId?: string; items?: unknown[] } | undefined;
    const orderId = (req.headers['idempotency-key'] as string | undefined) ?? body?.orderId;
    if (!orderId || !Array.isArray(body?.items) || body.items.length === 0) {
      return sendJson(res, 400, { error: 'invalid_order' });
    }
    let p = byOrder.get(orderId);
    const duplicate = p !== undefined;
    if (p) sim.duplicates++;
    else {
      p = { productionId: randomUUID(), orderId, createdAt: Date.now(), items: body.items };
      byOrder.set(orderId, p);
      sim.productions.set(p.productionId, p);
    }
    if (fault === 'timeout') await hang(res, o.hangMs ?? 10_000);
    sendJson(res, duplicate ? 200 : 202, { productionId: p.productionId, status: 'queued' });
  };

  const server = http.createServer(
    (req, res) => void handle(req, res).catch(() => sendJson(res, 500, { error: 'internal' })),
  );
  const port = await listen(server, o.port);
  return Object.assign(sim, { url: `http://127.0.0.1:${port}`, close: () => close(server) });
}
