// Fuzz target for the WebSocket upgrade (`GET /v1/events`): hostile upgrade requests, every kind of
// token in the header or the query, and the client resetting the TCP connection before its headers
// end, while its token is being verified, after the refusal or after the 101.
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import type { Outcome, Target } from './engine.js';
import { hostileHeaders, pathParam } from './inputs.js';
import { encodeRequest, exchange, type ResetPoint } from './raw-http.js';
import { TOKEN_KINDS, type FuzzStack, type TokenKind } from './stack.js';

export interface WsCase {
  path: string;
  token: TokenKind | 'none' | 'huge';
  inQuery: boolean;
  upgrade: Array<[string, string]>;
  attack: Array<[string, string]>;
  reset: ResetPoint;
}

const upgradeHeaders: fc.Arbitrary<Array<[string, string]>> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constant<Array<[string, string]>>([
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ['Sec-WebSocket-Key', randomBytes(16).toString('base64')],
      ['Sec-WebSocket-Version', '13'],
    ]),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Array<[string, string]>>(
      [
        ['Upgrade', 'websocket'],
        ['Connection', 'Upgrade'],
      ],
      [
        ['Upgrade', 'websocket'],
        ['Connection', 'Upgrade'],
        ['Sec-WebSocket-Key', 'not base64!'],
        ['Sec-WebSocket-Version', '13'],
      ],
      [
        ['Upgrade', 'websocket'],
        ['Connection', 'Upgrade'],
        ['Sec-WebSocket-Key', randomBytes(16).toString('base64')],
        ['Sec-WebSocket-Version', '8'],
      ],
      [
        ['Upgrade', 'WebSocket, h2c'],
        ['Connection', 'keep-alive, Upgrade'],
        ['Sec-WebSocket-Key', randomBytes(16).toString('base64')],
        ['Sec-WebSocket-Version', '13'],
      ],
      [
        ['Upgrade', 'h2c'],
        ['Connection', 'Upgrade'],
        ['HTTP2-Settings', 'AAMAAABkAAQCAAAAAAIAAAAA'],
      ],
      [
        ['Upgrade', 'websocket'],
        ['Connection', 'Upgrade'],
        ['Sec-WebSocket-Key', randomBytes(16).toString('base64')],
        ['Sec-WebSocket-Version', '13'],
        ['Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits'.repeat(50)],
      ],
      [
        ['Upgrade', 'websocket'],
        ['Connection', 'Upgrade'],
        ['Sec-WebSocket-Key', randomBytes(16).toString('base64')],
        ['Sec-WebSocket-Version', '13'],
        ['Sec-WebSocket-Protocol', 'a,'.repeat(500)],
      ],
    ),
  },
);

const wsReset: fc.Arbitrary<ResetPoint> = fc.oneof(
  { weight: 2, arbitrary: fc.constant<ResetPoint>({ at: 'never' }) },
  {
    weight: 1,
    arbitrary: fc
      .double({ min: 0.05, max: 0.95, noNaN: true })
      .map((fraction): ResetPoint => ({ at: 'mid-request', fraction })),
  },
  { weight: 1, arbitrary: fc.constant<ResetPoint>({ at: 'after-request' }) },
  { weight: 1, arbitrary: fc.constant<ResetPoint>({ at: 'after-answer-start' }) },
);

export const wsTarget: Target<WsCase> = {
  name: 'WebSocket upgrade',
  services: ['api'],
  arbitrary: () =>
    fc.record({
      path: fc.oneof(
        { weight: 5, arbitrary: fc.constant('/v1/events') },
        {
          weight: 1,
          arbitrary: pathParam(['v1/events', 'v1/events/', 'v1/eventsx', 'v1/kitchen/menu']).map(
            (p) => `/${p}`,
          ),
        },
      ),
      token: fc.constantFrom<WsCase['token']>(...TOKEN_KINDS, 'none', 'huge'),
      inQuery: fc.boolean(),
      upgrade: upgradeHeaders,
      attack: hostileHeaders.map((a) =>
        a.headers.filter(([k]) => !/content-length|transfer-encoding/i.test(k)),
      ),
      reset: wsReset,
    }),
  run: (s, c) => runWsCase(s, c),
  describe: (c) =>
    `${c.path.slice(0, 100)} token=${c.token}${c.inQuery ? ' (query)' : ''} upgrade=${JSON.stringify(c.upgrade.map(([k, v]) => [k, v.slice(0, 40)]))} attack=${c.attack.length} headers reset=${JSON.stringify(c.reset)}`,
};

async function runWsCase(s: FuzzStack, c: WsCase): Promise<Outcome> {
  const token =
    c.token === 'none' ? undefined : c.token === 'huge' ? 'e'.repeat(12_000) : s.tokens[c.token];
  const headers: Array<[string, string]> = [...c.upgrade, ...c.attack];
  let path = c.path;
  if (token && c.inQuery) {
    path += `${path.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(token)}`;
  } else if (token) headers.push(['Authorization', `Bearer ${token}`]);
  const port = s.services.api.port;
  const bytes = encodeRequest(
    {
      method: 'GET',
      path,
      headers: headers.filter(
        ([k]) => k.toLowerCase() !== 'connection' || c.upgrade.some(([u]) => u === k),
      ),
    },
    `127.0.0.1:${port}`,
  );
  const a = await exchange(port, bytes, { reset: c.reset, headOnly: true });
  return {
    status: a.status === 101 ? 200 : a.status,
    silent: c.reset.at !== 'never',
    bodyBytes: a.body.length,
  };
}
