// Fuzz target for the authorization server's token endpoint (client credentials): a partner's valid
// request mutated in its credentials, grant, scope, encoding and headers, plus its other endpoints.
import fc from 'fast-check';
import type { Target } from './engine.js';
import { contentType, FRAGMENTS, hostileBody, hostileHeaders, hostileString } from './inputs.js';
import { runHttpCase, type HttpCase } from './http-targets.js';
import type { FuzzStack } from './stack.js';

export interface AuthCase {
  path: string;
  method: string;
  creds: 'basic' | 'post' | 'wrong' | 'malformed' | 'none' | 'huge';
  form: Array<[string, string]> | undefined;
  raw: Buffer | undefined;
  ct: string | undefined;
  attack: { headers: Array<[string, string]>; lying: boolean };
}

const field = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.tuple(
      fc.constant('grant_type'),
      fc.oneof(
        fc.constant('client_credentials'),
        fc.constantFrom(
          'authorization_code',
          'password',
          'refresh_token',
          'urn:ietf:params:oauth:grant-type:jwt-bearer',
        ),
        hostileString,
      ),
    ),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(
      fc.constant('scope'),
      fc.oneof(
        fc.constant(''),
        hostileString,
        fc.constantFrom(
          'rabbitmq.read:*/*',
          'rabbitmq.write:%2F/smart-home.replies',
          'rabbitmq.configure:*/* rabbitmq.tag:administrator',
        ),
      ),
    ),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(
      fc.constantFrom(
        'resource',
        'audience',
        'client_id',
        'client_assertion',
        'redirect_uri',
        ...FRAGMENTS,
      ),
      hostileString,
    ),
  },
);

export const authTarget: Target<AuthCase> = {
  name: 'auth token endpoint',
  services: ['auth'],
  arbitrary: () =>
    fc.record({
      path: fc.oneof(
        { weight: 8, arbitrary: fc.constant('/token') },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            '/token/introspection',
            '/token/revocation',
            '/jwks',
            '/.well-known/openid-configuration',
            '/auth',
            '/reg',
            '/session/end',
            '/me',
            '/token/../jwks',
            '/token%00',
            `/${'a'.repeat(5000)}`,
          ),
        },
      ),
      method: fc.oneof(
        { weight: 8, arbitrary: fc.constant('POST') },
        { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'OPTIONS', 'HEAD') },
      ),
      creds: fc.constantFrom<AuthCase['creds']>(
        'basic',
        'basic',
        'post',
        'wrong',
        'malformed',
        'none',
        'huge',
      ),
      form: fc.option(fc.array(field, { maxLength: 6 }), { nil: undefined, freq: 4 }),
      raw: fc.option(hostileBody({ grant_type: 'client_credentials', scope: 'x' }), {
        nil: undefined,
        freq: 2,
      }),
      ct: fc.oneof(
        {
          weight: 4,
          arbitrary: fc.constant<string | undefined>('application/x-www-form-urlencoded'),
        },
        { weight: 1, arbitrary: contentType },
      ),
      attack: hostileHeaders,
    }),
  run: (s, c) => runHttpCase(s.services.auth.port, authRequest(s, c)),
  describe: (c) =>
    `${c.method} ${c.path.slice(0, 80)} creds=${c.creds} form=${JSON.stringify(c.form)?.slice(0, 400)} raw=${c.raw ? `${c.raw.length} bytes` : 'none'} ct=${c.ct}`,
};

function authRequest(s: FuzzStack, c: AuthCase): HttpCase {
  const { id, secret } = s.authClient;
  const headers: Array<[string, string]> = [];
  const form: Array<[string, string]> = c.form ?? [['grant_type', 'client_credentials']];
  const basic = (v: string) =>
    headers.push(['Authorization', `Basic ${Buffer.from(v).toString('base64')}`]);
  if (c.creds === 'basic') basic(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`);
  if (c.creds === 'wrong') basic(`${encodeURIComponent(id)}:not-the-secret`);
  if (c.creds === 'malformed') headers.push(['Authorization', 'Basic !!!%%%']);
  if (c.creds === 'huge') basic(`${'c'.repeat(6000)}:${'s'.repeat(6000)}`);
  if (c.creds === 'post') form.push(['client_id', id], ['client_secret', secret]);
  const body = c.raw ?? Buffer.from(new URLSearchParams(form).toString());
  if (c.ct) headers.push(['Content-Type', c.ct.replace(/[\r\n]/g, '')]);
  headers.push(...c.attack.headers);
  return {
    route: 'POST /token',
    method: c.method,
    path: c.path,
    cred: 'none',
    staffOnly: false,
    headers,
    body,
    lying: c.attack.lying,
    reset: { at: 'never' },
  };
}
