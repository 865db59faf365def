// The tenant platform's identity provider, for local runs and tests: it signs tenant access tokens
// (ES256) and serves its JWKS and OpenID discovery document, so the hub verifies tokens exactly
// as it verifies the production provider's.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';

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

export async function startTenantIdp(o: { port?: number; audience?: string; host?: string } = {}): Promise<TenantIdp> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = `idp-${Date.now().toString(36)}`;
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const audience = o.audience ?? 'integration-hub';
  let issuer = '';
  const server: Server = createServer((req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/.well-known/jwks.json') return json(200, { keys: [jwk] });
    if (req.method === 'GET' && req.url === '/.well-known/openid-configuration')
      return json(200, { issuer, jwks_uri: `${issuer}/.well-known/jwks.json`, id_token_signing_alg_values_supported: ['ES256'] });
    return json(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(o.port ?? 0, o.host ?? '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const key = privateKey;
  return {
    issuer,
    jwksUrl: `${issuer}/.well-known/jwks.json`,
    audience,
    async issue(tenantId, opts = {}) {
      const now = Math.floor(Date.now() / 1000);
      const aud = opts.audience ?? audience;
      const payload: Record<string, unknown> = {
        roles: opts.roles ?? ['tenant'], scope: 'openid smart-home', iss: issuer, aud, sub: tenantId, iat: now,
        ...(opts.withoutExpiry ? {} : { exp: now + (opts.ttlSeconds ?? 3600) }),
        ...(opts.clientRoles ? { resource_access: { [aud]: { roles: opts.clientRoles } } } : {}),
        ...opts.claims,
      };
      return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid }).sign(key);
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
