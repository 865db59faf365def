// Tenant tokens for tests: the development identity provider's JWKS on a real port, and an
// authenticator verifying against it.
import { TenantJwtAuthenticator } from '../../services/core/auth/tenant-jwt.js';
import {
  startTenantIdp,
  type IssueOptions,
  type TenantIdp,
} from '../../services/simulators/tenant-idp/server.js';
import { track } from './leaks.js';

export interface TestIdentityProvider {
  authenticator: TenantJwtAuthenticator;
  token(tenantId: string, roles?: string[]): Promise<string>;
  /** Any token the provider can sign: client roles, foreign claims, no `exp`. */
  issue(tenantId: string, o: IssueOptions): Promise<string>;
  idp: TenantIdp;
  close(): Promise<void>;
}

export async function startIdentityProvider(): Promise<TestIdentityProvider> {
  const idp = await startTenantIdp();
  const untrack = track('tenant identity provider');
  return {
    authenticator: new TenantJwtAuthenticator({
      TENANT_JWKS_URL: idp.jwksUrl,
      TENANT_JWT_ISSUER: idp.issuer,
      TENANT_JWT_AUDIENCE: idp.audience,
    }),
    token: (tenantId, roles) => idp.issue(tenantId, { roles: roles ?? [] }),
    issue: (tenantId, o) => idp.issue(tenantId, o),
    idp,
    async close() {
      await idp.close();
      untrack();
    },
  };
}
