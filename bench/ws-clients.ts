// A child process of the smart-home benchmark (`node dist/bench/ws-clients.js`, forked with an IPC
// channel) holding a share of the tenant WebSockets: one process may hold only as many sockets as
// its open-file limit allows, so the api's ~19,000 server-side sockets are matched by clients
// spread over several of these. Each socket records when every event carrying an `eventId` arrived.
import { WebSocket } from 'ws';
import { nowMs } from './smart-home-stats.js';

export type ToWsClients =
  | { cmd: 'open'; url: string; tokens: string[]; concurrency: number }
  | { cmd: 'count'; id: string }
  | { cmd: 'arrivals'; id: string }
  | { cmd: 'stop' };

export type FromWsClients =
  | { type: 'opened'; ready: number; refused: number; firstRefusal: string }
  | { type: 'count'; n: number }
  | { type: 'arrivals'; at: number[] }
  | { type: 'error'; message: string };

if (!process.send) {
  throw new Error('ws-clients is started by the smart-home benchmark (fork with an IPC channel)');
}

const send = (m: FromWsClients): void => {
  process.send?.(m);
};
const sockets: WebSocket[] = [];
/** Event id → arrival times, one per socket that got it. */
const arrivals = new Map<string, number[]>();

function onMessage(data: Buffer): void {
  const at = nowMs();
  const e = JSON.parse(data.toString('utf8')) as { eventId?: unknown };
  if (typeof e.eventId !== 'string') return;
  let list = arrivals.get(e.eventId);
  if (!list) arrivals.set(e.eventId, (list = []));
  list.push(at);
}

/** Resolves on the server's `ready` message (the socket then gets every event of its tenant). */
function open(url: string, token: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    // No compression offered: the api declines it anyway, and a client's zlib context costs memory here.
    const ws = new WebSocket(`${url}?access_token=${encodeURIComponent(token)}`, {
      perMessageDeflate: false,
    });
    ws.once('message', () => {
      ws.on('message', onMessage);
      resolve(ws);
    });
    ws.once('unexpected-response', (req, res) => {
      reject(new Error(`websocket refused with ${res.statusCode}`));
      req.destroy();
    });
    ws.on('error', reject);
    ws.once('close', () => reject(new Error('websocket closed before ready')));
  });
}

async function openAll(url: string, tokens: readonly string[], concurrency: number): Promise<void> {
  let next = 0;
  let refused = 0;
  let firstRefusal = '';
  await Promise.all(
    Array.from({ length: Math.min(concurrency, tokens.length) }, async () => {
      while (next < tokens.length) {
        const token = tokens[next++] as string;
        try {
          sockets.push(await open(url, token));
        } catch (e) {
          refused++;
          firstRefusal ||= e instanceof Error ? e.message : String(e);
        }
      }
    }),
  );
  send({ type: 'opened', ready: sockets.length, refused, firstRefusal });
}

process.on('message', (m: ToWsClients) => {
  if (m.cmd === 'open') {
    void openAll(m.url, m.tokens, m.concurrency).catch((e: unknown) =>
      send({ type: 'error', message: String(e) }),
    );
  } else if (m.cmd === 'count') send({ type: 'count', n: arrivals.get(m.id)?.length ?? 0 });
  else if (m.cmd === 'arrivals') send({ type: 'arrivals', at: arrivals.get(m.id) ?? [] });
  else stop();
});

function stop(): void {
  for (const ws of sockets) ws.terminate();
  process.disconnect?.();
  process.exit(0);
}

// An orphan (the benchmark crashed) must not hold sockets.
process.on('disconnect', stop);
