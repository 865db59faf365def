// Tenant tokens for tests: the development identity provider's JWKS on a real port, and an
// authenticator verifying against it.
import { TenantJwtAuthenticator } from '../../services/core/auth/tenant-jwt.js';
import { startTenantIdp } from '../../services/simulators/tenant-idp/server.js';
import { track } from './leaks.js';

export interface TestIdentityProvider {
  authenticator: TenantJwtAuthenticator;
  token(tenantId: string, roles?: string[]): Promise<string>;
  close(): Promise<void>;
}

export async function startIdentityProvider(): Promise<TestIdentityProvider> {
  const idp = await startTenantIdp();
  const untrack = track('tenant identity provider');
  return {
    authenticator: new TenantJwtAuthenticator({ TENANT_JWKS_URL: idp.jwksUrl, TENANT_JWT_ISSUER: idp.issuer, TENANT_JWT_AUDIENCE: idp.audience }),
    token: (tenantId, roles) => idp.issue(tenantId, { roles: roles ?? [] }),
    async close() {
      await idp.close();
      untrack();
    },
  };
}
