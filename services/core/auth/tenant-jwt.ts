// Tenant authentication: a bearer JWT signed by the platform's identity provider, verified against
// its JWKS (fetched and cached by jose), its issuer and our audience. The subject is the tenant.
import { createRemoteJWKSet, jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';
import { z } from 'zod';
import { ApiError } from '../http.js';
import { toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { identityProviderKeys } from './idp-outage.js';

/**
 * Keycloak answers its certs endpoint in well under 100 ms; a fetch still pending after 3 s is an
 * outage, and every request needing a key waits this long, so it stays short.
 */
const DEFAULT_JWKS_TIMEOUT_MS = 3_000;

export const tenantAuthEnv = z.object({
  TENANT_JWT_ISSUER: z
    .string({ required_error: 'is required (the identity provider issuer URL)' })
    .url(),
  TENANT_JWKS_URL: z
    .string({ required_error: 'is required (the identity provider JWKS URL)' })
    .url(),
  TENANT_JWT_AUDIENCE: z.string().min(1).default('integration-hub'),
  /**
   * The client whose client roles grant staff roles (`resource_access[<client>].roles`); defaults to
   * the audience. Set it when tokens are issued for the tenant app's client but staff roles are
   * assigned on the hub's own client.
   */
  TENANT_JWT_ROLES_CLIENT: z.string().min(1).optional(),
  /** How long a JWKS fetch may take before the provider counts as unavailable (503, not 401). */
  TENANT_JWKS_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .positive()
    .max(60_000)
    .default(DEFAULT_JWKS_TIMEOUT_MS),
});
type TenantAuthConfig = z.infer<typeof tenantAuthEnv>;
/** The configuration as callers hand it over; the JWKS timeout has its default. */
type TenantAuthOptions = Omit<TenantAuthConfig, 'TENANT_JWKS_TIMEOUT_MS'> & {
  TENANT_JWKS_TIMEOUT_MS?: number;
};

export interface Principal {
  /** The tenant (JWT `sub`). */
  tenantId: string;
  /** Client roles of our own client only: `resource_access[<TENANT_JWT_ROLES_CLIENT or audience>].roles`. */
  roles: string[];
  /** OAuth scopes from `scope`. */
  scopes: string[];
}

export interface Authenticator {
  verify(token: string): Promise<Principal>;
}

/**
 * Staff roles come only from the roles the identity provider grants on our own client (Keycloak's
 * client roles, `resource_access[<client>].roles`), which only the realm's administrators assign.
 * Top-level `roles` and `realm_access.roles` are ignored: any client of the tenant realm, and any
 * protocol mapper on it, can put them in a token, so trusting them let a tenant make itself
 * kitchen-admin.
 */
export function clientRolesOf(p: JWTPayload, client: string): string[] {
  const access = p.resource_access;
  if (typeof access !== 'object' || access === null || !Object.hasOwn(access, client)) return [];
  const roles = ((access as Record<string, unknown>)[client] as { roles?: unknown } | null)?.roles;
  return Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : [];
}

/**
 * Verified tokens are kept until they expire, at most this long and at most CACHE_SIZE of them:
 * an ES256 verification costs ~0.09 ms of CPU, 13 % of the api's CPU at 500 opens/s, and the app
 * sends the same token with every request. Only a token that passed verification is cached.
 */
const CACHE_MS = 60_000;
const CACHE_SIZE = 10_000;

export class TenantJwtAuthenticator implements Authenticator {
  private readonly jwks: ReturnType<typeof createRemoteJWKSet>;
  private readonly verified = new Map<string, { principal: Principal; until: number }>();

  private readonly keys: ReturnType<typeof identityProviderKeys>;

  constructor(
    private readonly config: TenantAuthOptions,
    o: { logger?: Pick<Logger, 'warn'> } = {},
  ) {
    // A key unknown to the cache triggers a refetch at most every 30 s (key rotation without restarts).
    this.jwks = createRemoteJWKSet(new URL(config.TENANT_JWKS_URL), {
      cooldownDuration: 30_000,
      cacheMaxAge: 10 * 60_000,
      timeoutDuration: config.TENANT_JWKS_TIMEOUT_MS ?? DEFAULT_JWKS_TIMEOUT_MS,
    });
    this.keys = identityProviderKeys(this.jwks, (err, failures) =>
      o.logger?.warn(
        { err: toError(err), jwksUrl: config.TENANT_JWKS_URL, failures },
        'identity provider unavailable: tenant tokens cannot be verified',
      ),
    );
  }

  async verify(token: string): Promise<Principal> {
    const now = Date.now();
    const hit = this.verified.get(token);
    if (hit && hit.until > now) return hit.principal;
    if (hit) this.verified.delete(token);
    const { principal, expiresAt } = await this.verifyNow(token);
    if (this.verified.size >= CACHE_SIZE) {
      this.verified.delete(this.verified.keys().next().value as string);
    }
    this.verified.set(token, { principal, until: Math.min(expiresAt, now + CACHE_MS) });
    return principal;
  }

  private async verifyNow(token: string): Promise<{ principal: Principal; expiresAt: number }> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        issuer: this.config.TENANT_JWT_ISSUER,
        audience: this.config.TENANT_JWT_AUDIENCE,
        algorithms: ['RS256', 'ES256', 'PS256', 'EdDSA'],
        // A token that never expires cannot be revoked by waiting; the provider always sets one.
        requiredClaims: ['exp', 'sub'],
        clockTolerance: 5,
      }));
    } catch (thrown) {
      if (thrown instanceof ApiError) throw thrown;
      if (thrown instanceof joseErrors.JWTExpired) {
        throw new ApiError(401, 'token_expired', 'The access token has expired; sign in again.');
      }
      if (thrown instanceof joseErrors.JWTClaimValidationFailed) {
        throw new ApiError(
          401,
          'invalid_token',
          `The access token was refused: its "${thrown.claim}" claim is ${thrown.reason === 'missing' ? 'missing' : 'not valid'}.`,
        );
      }
      if (thrown instanceof joseErrors.JOSEError) {
        throw new ApiError(401, 'invalid_token', `The access token was refused (${thrown.code}).`);
      }
      throw thrown;
    }
    if (!payload.sub) {
      throw new ApiError(401, 'invalid_token', 'The access token names no subject.');
    }
    const scope = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [];
    return {
      principal: {
        tenantId: payload.sub,
        roles: clientRolesOf(
          payload,
          this.config.TENANT_JWT_ROLES_CLIENT ?? this.config.TENANT_JWT_AUDIENCE,
        ),
        scopes: scope,
      },
      // jwtVerify has required and checked `exp`.
      expiresAt: (payload.exp ?? 0) * 1000,
    };
  }
}

/** The bearer token of a request: the Authorization header, else `access_token` (browsers' WebSockets cannot set headers). */
export function bearerToken(
  headers: Record<string, string | string[] | undefined>,
  url?: string,
): string | undefined {
  const h = headers.authorization;
  const value = Array.isArray(h) ? h[0] : h;
  const m = value ? /^Bearer\s+(\S+)$/i.exec(value) : null;
  if (m?.[1]) return m[1];
  if (url) {
    const q = new URL(url, 'http://x').searchParams.get('access_token');
    if (q) return q;
  }
  return undefined;
}
