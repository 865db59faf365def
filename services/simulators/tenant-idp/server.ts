// The tenant platform's identity provider, for local runs and tests: it signs tenant access tokens
// (ES256) and serves its JWKS and OpenID discovery document, so the hub verifies tokens exactly
// as it verifies the production provider's. For developers it also hands out a tenant's token at
// `POST /dev/token` (what `hub dev token` calls); it exists only here, never in production.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { z } from 'zod';

export interface TenantIdp {
  issuer: string;
  jwksUrl: string;
  audience: string;
  /** Signs an access token for `tenantId`; `ttlSeconds` may be negative to make an expired one. */
  issue(tenantId: string, o?: IssueOptions): Promise<string>;
  close(): Promise<void>;
}

export interface IssueOptions {
  ttlSeconds?: number;
  /** Top-level `roles` claim (any client of the realm can carry it; the hub does not trust it). */
  roles?: string[];
  /** Client roles of the audience, as Keycloak puts them: `resource_access[<audience>].roles`. */
  clientRoles?: string[];
  audience?: string;
  /** More claims, merged last: `realm_access`, another client's `resource_access`, even `iss`. */
  claims?: Record<string, unknown>;
  /** Leaves out `exp`, as a misconfigured provider would. */
  withoutExpiry?: boolean;
}

/** A tenant id as the demo page accepts it. */
const DEV_TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;
/** The `POST /dev/token` body is `{"tenant": "…", "ttlSeconds": n}`: a few dozen bytes. */
const MAX_DEV_TOKEN_BODY = 1024;
const MAX_DEV_TOKEN_TTL = 24 * 3600;
const TENANT_RULE =
  'tenant must be 1-100 letters, digits or . _ : - (starting with a letter or digit)';
const TTL_RULE = `ttlSeconds must be a whole number from 60 to ${MAX_DEV_TOKEN_TTL}`;

/** Reads at most `limit` bytes of the body; undefined when it is longer. */
async function readSmallBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const devTokenRequest = z.object({
  tenant: z.string({ message: TENANT_RULE }).regex(DEV_TENANT_ID, TENANT_RULE),
  ttlSeconds: z
    .number({ message: TTL_RULE })
    .int(TTL_RULE)
    .min(60, TTL_RULE)
    .max(MAX_DEV_TOKEN_TTL, TTL_RULE)
    .default(3600),
});

/** The tenant and lifetime of a `POST /dev/token` body, or the reason it is refused. */
function parseDevTokenRequest(
  body: string | undefined,
): { tenant: string; ttlSeconds: number } | { error: string } {
  if (body === undefined) return { error: `the body is larger than ${MAX_DEV_TOKEN_BODY} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { error: 'the body is not JSON; send {"tenant": "<tenant id>"}' };
  }
  // The tenant's rule first, as a person fixing the request reads it.
  const r = devTokenRequest.safeParse(typeof json === 'object' && json !== null ? json : {});
  if (r.success) return r.data;
  const tenantIssue = r.error.issues.find((i) => i.path[0] === 'tenant');
  return { error: (tenantIssue ?? r.error.issues[0])!.message };
}

export async function startTenantIdp(
  o: { port?: number; audience?: string; host?: string } = {},
): Promise<TenantIdp> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = `idp-${Date.now().toString(36)}`;
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const audience = o.audience ?? 'integration-hub';
  let issuer = '';
  const server: Server = createServer((req, res) => {
    // Only the public discovery documents are readable from other origins: a web page the developer
    // opens must not read a token minted by `POST /dev/token`.
    const json = (status: number, body: unknown, crossOrigin = false) => {
      res.writeHead(status, {
        'content-type': 'application/json',
        ...(crossOrigin ? { 'access-control-allow-origin': '*' } : {}),
      });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/.well-known/jwks.json') {
      return json(200, { keys: [jwk] }, true);
    }
    if (req.method === 'GET' && req.url === '/.well-known/openid-configuration') {
      return json(
        200,
        {
          issuer,
          jwks_uri: `${issuer}/.well-known/jwks.json`,
          id_token_signing_alg_values_supported: ['ES256'],
        },
        true,
      );
    }
    if (req.method === 'POST' && req.url === '/dev/token') {
      void readSmallBody(req, MAX_DEV_TOKEN_BODY).then(
        async (body) => {
          const r = parseDevTokenRequest(body);
          if ('error' in r) return json(400, { error: 'invalid_request', message: r.error });
          return json(200, {
            accessToken: await idp.issue(r.tenant, { ttlSeconds: r.ttlSeconds }),
            tokenType: 'Bearer',
            expiresIn: r.ttlSeconds,
            tenant: r.tenant,
          });
        },
        () => json(400, { error: 'invalid_request', message: 'the body could not be read' }),
      );
      return;
    }
    return json(404, { error: 'not_found' });
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(o.port ?? 0, o.host ?? '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const key = privateKey;
  const idp: TenantIdp = {
    issuer,
    jwksUrl: `${issuer}/.well-known/jwks.json`,
    audience,
    async issue(tenantId, opts = {}) {
      const now = Math.floor(Date.now() / 1000);
      const aud = opts.audience ?? audience;
      const payload: Record<string, unknown> = {
        roles: opts.roles ?? ['tenant'],
        scope: 'openid smart-home',
        iss: issuer,
        aud,
        sub: tenantId,
        iat: now,
        ...(opts.withoutExpiry ? {} : { exp: now + (opts.ttlSeconds ?? 3600) }),
        ...(opts.clientRoles ? { resource_access: { [aud]: { roles: opts.clientRoles } } } : {}),
        ...opts.claims,
      };
      return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid }).sign(key);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return idp;
}
