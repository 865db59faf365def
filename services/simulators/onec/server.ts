// 1C:Accounting OData simulator: Basic auth, `POST /odata/standard.odata/{Document_…|Catalog_…}?$format=json`
// records every object it gets (duplicates included, so tests can see them), and
// `GET …/Document_…(guid'…')` finds one by Ref_Key. Errors and lost answers on demand.
import http from 'node:http';
import { close, FaultQueue, hang, listen, parseJson, readBody, sendJson } from '../http-kit.js';

export interface ReceivedDocument {
  entity: string;
  refKey: string;
  body: Record<string, unknown>;
}

export interface OneCSimulator {
  /** The OData base: …/odata/standard.odata */
  url: string;
  documents: ReceivedDocument[];
  /** `error`: 500 before recording; `lost`: record, then hold the answer (the client times out). */
  faults: FaultQueue<'error' | 'lost'>;
  /** How long 1C takes to write an object before it is found and answered (0 by default). */
  writeMs: number;
  close(): Promise<void>;
}

const BASE = '/odata/standard.odata/';
const ENTITY = /^((?:Document|Catalog)_[^(/?]+)(?:\(guid'([0-9a-f-]{36})'\))?$/;

export async function startOneCSimulator(o: {
  user: string;
  password: string;
  port?: number;
  hangMs?: number;
}): Promise<OneCSimulator> {
  const sim = {
    documents: [] as ReceivedDocument[],
    faults: new FaultQueue<'error' | 'lost'>(),
    writeMs: 0,
  };
  const auth = `Basic ${Buffer.from(`${o.user}:${o.password}`).toString('base64')}`;

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const text = await readBody(req);
    if (req.headers.authorization !== auth) {
      return sendJson(res, 401, {
        'odata.error': { code: '', message: { lang: 'en', value: 'Authentication failed' } },
      });
    }
    const url = new URL(req.url ?? '/', 'http://x');
    const m = url.pathname.startsWith(BASE)
      ? ENTITY.exec(decodeURIComponent(url.pathname.slice(BASE.length)))
      : null;
    if (!m?.[1] || url.searchParams.get('$format') !== 'json') {
      return sendJson(res, 404, { 'odata.error': { code: '', message: { value: 'not found' } } });
    }
    const entity = m[1];
    if (req.method === 'GET' && m[2]) {
      const doc = sim.documents.find((d) => d.entity === entity && d.refKey === m[2]);
      return doc
        ? sendJson(res, 200, doc.body)
        : sendJson(res, 404, {
            'odata.error': { code: '', message: { value: 'object not found' } },
          });
    }
    if (req.method !== 'POST' || m[2]) return sendJson(res, 405, {});
    const fault = sim.faults.take();
    if (fault === 'error') {
      return sendJson(res, 500, {
        'odata.error': { code: '-1', message: { value: 'database locked' } },
      });
    }
    const body = parseJson(text) as Record<string, unknown> | undefined;
    if (!body || typeof body.Ref_Key !== 'string') {
      return sendJson(res, 400, {
        'odata.error': { code: '', message: { value: 'Ref_Key required' } },
      });
    }
    if (sim.writeMs > 0) await new Promise((r) => setTimeout(r, sim.writeMs));
    sim.documents.push({ entity, refKey: body.Ref_Key, body });
    if (fault === 'lost') await hang(res, o.hangMs ?? 10_000);
    sendJson(res, 201, body);
  };

  const server = http.createServer(
    (req, res) => void handle(req, res).catch(() => sendJson(res, 500, {})),
  );
  const port = await listen(server, o.port);
  return Object.assign(sim, {
    url: `http://127.0.0.1:${port}${BASE.slice(0, -1)}`,
    close: () => close(server),
  });
}
