// Hostile inputs as fast-check arbitraries: bodies (malformed, truncated, wrongly typed, deep, huge,
// invalid UTF-8, injection fragments, random bytes), content types, headers and paths. Each valid
// starting point is mutated, so that cases get past parsing and authentication into deep code.
import fc from 'fast-check';

/** Strings an attacker tries first: injections, NUL, control and bidi characters, format strings. */
export const FRAGMENTS = [
  "' OR '1'='1",
  "'; DROP TABLE kitchen_orders; --",
  '" OR ""="',
  '1; select pg_sleep(10)',
  '$(reboot)',
  '`id`',
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  '{{7*7}}',
  '${jndi:ldap://x/a}',
  '%s%s%s%n',
  '\u0000',
  'a\u0000b',
  '\r\nSet-Cookie: x=1',
  '\u202e',
  '\ud800',
  '\uffff',
  '../../../../etc/passwd',
  '%00',
  '__proto__',
  'constructor',
  '-1',
  '1e309',
  'NaN',
  '9007199254740993',
  '0x10',
  ' ',
  '',
];

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...FRAGMENTS),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom('a', '\u0000', '"', '\\', '\n', 'é', '😀'), maxLength: 64 }),
  fc.integer({ min: 256, max: 70_000 }).map((n) => 'x'.repeat(n)),
);

export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: hostileString },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      null,
      true,
      false,
      0,
      -1,
      1e308,
      -0,
      Number.MAX_SAFE_INTEGER + 2,
      [],
      {},
    ),
  },
);

/** A valid JSON object with one field, at any depth, replaced, removed or joined by an unknown one. */
export function mutateJson(valid: unknown): fc.Arbitrary<unknown> {
  const paths: string[][] = [];
  const walk = (v: unknown, p: string[]) => {
    paths.push(p);
    if (v && typeof v === 'object') for (const [k, c] of Object.entries(v)) walk(c, [...p, k]);
  };
  walk(valid, []);
  return fc
    .tuple(
      fc.constantFrom(...paths),
      fc.constantFrom('replace', 'remove', 'add'),
      hostileValue,
      fc.constantFrom(...FRAGMENTS, 'extra'),
    )
    .map(([path, op, value, key]) => {
      const copy = structuredClone(valid) as Record<string, unknown>;
      if (path.length === 0) return op === 'replace' ? value : { ...copy, [key]: value };
      let parent: Record<string, unknown> = copy;
      for (const k of path.slice(0, -1)) parent = parent[k] as Record<string, unknown>;
      const last = path[path.length - 1] as string;
      if (op === 'replace') parent[last] = value;
      else if (op === 'remove') delete parent[last];
      else parent[key] = value;
      return copy;
    });
}

const enc = (s: string) => Buffer.from(s, 'utf8');

/** Bodies that are not what the route expects, from near misses to garbage. */
export function hostileBody(valid: unknown): fc.Arbitrary<Buffer> {
  const text = JSON.stringify(valid);
  return fc.oneof(
    { weight: 6, arbitrary: mutateJson(valid).map((v) => enc(JSON.stringify(v) ?? 'undefined')) },
    {
      weight: 2,
      arbitrary: fc
        .integer({ min: 0, max: Math.max(0, text.length - 1) })
        .map((n) => enc(text.slice(0, n))),
    },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => enc(JSON.stringify(v))) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)) },
    // Invalid UTF-8 inside JSON strings: lone continuation bytes, overlong NUL, truncated sequences.
    {
      weight: 1,
      arbitrary: fc
        .constantFrom([0xff], [0xc0, 0x80], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0x00])
        .map((b) =>
          Buffer.concat([
            enc(text.slice(0, Math.floor(text.length / 2))),
            Buffer.from(b),
            enc(text.slice(Math.floor(text.length / 2))),
          ]),
        ),
    },
    // Deep nesting: objects and arrays thousands of levels deep, within the body limit.
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.integer({ min: 100, max: 60_000 }), fc.boolean())
        .map(([n, arr]) =>
          enc(arr ? `${'['.repeat(n)}${']'.repeat(n)}` : `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`),
        ),
    },
    // Huge arrays of invalid elements in every array field, up to the body limit (each error a zod issue).
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.integer({ min: 1_000, max: 60_000 }),
          fc.constantFrom('{}', '"x"', 'null', '-1', '[]'),
        )
        .map(([n, el]) =>
          enc(
            JSON.stringify(withArrays(valid, `__ARRAY__`)).replaceAll(
              '"__ARRAY__"',
              `[${Array(n).fill(el).join(',')}]`,
            ),
          ),
        ),
    },
    // Larger than the default body limit (256 KB).
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 262_145, max: 400_000 })
        .map((n) => enc(`{"pad":"${'a'.repeat(n)}"}`)),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(
          '',
          'null',
          '[]',
          '{}',
          '"',
          '{"a":',
          'true',
          '1e999',
          '{"__proto__":{"admin":true}}',
        )
        .map(enc),
    },
  );
}

/** The object with every array (or the root, when it has none) replaced by a marker. */
function withArrays(v: unknown, marker: string): unknown {
  let found = false;
  const rec = (x: unknown): unknown => {
    if (Array.isArray(x)) {
      found = true;
      return marker;
    }
    if (x && typeof x === 'object') {
      return Object.fromEntries(Object.entries(x).map(([k, c]) => [k, rec(c)]));
    }
    return x;
  };
  const out = rec(v);
  return found ? out : { items: marker, ...(out && typeof out === 'object' ? out : {}) };
}

export const contentType: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      undefined,
      'text/plain',
      'application/xml',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/json; charset=utf-16',
      'application/json; charset=latin1',
      'application/octet-stream',
      '*/*',
      'application/json, text/plain',
      'APPLICATION/JSON',
      'application/jsonx',
      ';;;',
      'application/x-protobuf',
    ),
  },
  { weight: 1, arbitrary: hostileString.filter((s) => !/[\r\n]/.test(s)) },
);

/** Header sets a hostile client sends alongside (or instead of) the usual ones. */
export type HeaderAttack = {
  headers: Array<[string, string]>;
  /** the body length is a lie: the client half-closes */ lying: boolean;
};

export const hostileHeaders: fc.Arbitrary<HeaderAttack> = fc.oneof(
  { weight: 6, arbitrary: fc.constant<HeaderAttack>({ headers: [], lying: false }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 8_000, max: 40_000 }).map((n) => ({
      headers: [['X-Big', 'h'.repeat(n)]] as Array<[string, string]>,
      lying: false,
    })),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 50, max: 3_000 }).map((n) => ({
      headers: Array.from({ length: n }, (_, i) => [`X-H${i}`, 'v'] as [string, string]),
      lying: false,
    })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('a\r\nX-Injected: 1', 'a\rb', 'a\nb', '\u0000', 'é', '\r\n\r\nGET / HTTP/1.1')
      .map((v) => ({ headers: [['X-Request-Id', v]] as Array<[string, string]>, lying: false })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom<Array<[string, string]>>(
        [
          ['Content-Length', '5'],
          ['Content-Length', '6'],
        ],
        [['Content-Length', '-1']],
        [['Content-Length', 'abc']],
        [['Content-Length', '99999999999999999999']],
        [['Content-Length', '1000000']],
        [
          ['Transfer-Encoding', 'chunked'],
          ['Content-Length', '3'],
        ],
        [['Transfer-Encoding', 'chunked']],
        [['Transfer-Encoding', 'gzip, chunked']],
        [['Transfer-Encoding', 'identity']],
        [
          ['Host', 'a'],
          ['Host', 'b'],
        ],
        [
          ['Authorization', 'Bearer a'],
          ['Authorization', 'Bearer b'],
        ],
        [['X-Request-Id', 'x'.repeat(5000)]],
        [['Expect', '100-continue']],
        [['Content-Encoding', 'gzip']],
        [
          ['Connection', 'keep-alive, Upgrade'],
          ['Upgrade', 'h2c'],
        ],
        [['X-Forwarded-For', '::1, 10.0.0.1, ' + 'a'.repeat(2000)]],
      )
      .map((headers) => ({
        headers,
        lying: headers.some(([k]) => /content-length|transfer-encoding/i.test(k)),
      })),
  },
);

/** Path segments for parameters: valid ones, and traversal, NUL, encoded, unicode and very long ones. */
export function pathParam(valid: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...valid) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '..',
        '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
        '..%2f..%2f',
        '%00',
        'a%00b',
        '%',
        '%zz',
        '%c0%ae',
        '%ff%fe',
        '%E2%80%AE',
        '~',
        ';',
        '%3Bselect',
        "'%20OR%201=1",
        '%0d%0aX:1',
        '%u002e',
        '00000000-0000-0000-0000-000000000000',
      ),
    },
    { weight: 1, arbitrary: fc.integer({ min: 100, max: 20_000 }).map((n) => 'a'.repeat(n)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }).map(encodeURIComponent) },
  );
}
